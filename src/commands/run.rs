//! `tether run [-n NS] [--env-from SERVICE] -- CMD`: the edge of [`crate::run`]. CMD runs
//! in namespaces of its own whose only way out is tether's userspace stack, so any program
//! reaches the cluster by its names; tether exits with CMD's code. The session to the
//! connect agent is this command's own (installed on first use, as for `connect`), so
//! `run` needs no `connect` running.

use anyhow::anyhow;
use tokio_util::sync::CancellationToken;

use super::{
    Classified, Failure,
    intercept::{connect_guarded, namespace_of},
};
use crate::{
    cli::RunArgs,
    connect::session,
    intercept::{self, InterceptError, PortSpec},
    run::{RunCommand, RunError, RunOptions},
};

impl Classified for RunError {
    fn is_bad_input(&self) -> bool {
        self.is_bad_input()
    }
}

pub async fn run(args: RunArgs) -> Result<(), Failure> {
    let cluster = connect_guarded(args.context.as_deref()).await?;
    let client = cluster.client.clone();
    let namespace = namespace_of(&cluster, args.namespace.clone());
    let mut cmd = RunCommand::from_argv(args.command.clone(), namespace.clone())
        .map_err(Failure::classify)?;
    session::check_namespace(&client, &namespace)
        .await
        .map_err(Failure::classify)?;
    if let Some(service) = &args.env_from {
        let vars = env_of(&client, &namespace, service).await?;
        eprintln!(
            "run: {} variables from Service {service}'s container",
            vars.len()
        );
        cmd.env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
    }
    let shutdown = CancellationToken::new();
    let session::Opened { net, mut events } =
        session::open(&client, &namespace, shutdown.clone(), |line| {
            eprintln!("  {line}")
        })
        .await
        .map_err(Failure::classify)?;
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    e = events.recv() => e,
                };
                match event {
                    Some(event) => eprintln!("run: {event}"),
                    None => return,
                }
            }
        }
    });
    let options = RunOptions {
        publish: args.publish.clone(),
        ..RunOptions::default()
    };
    let status = crate::run::run_with(cmd, net, options).await;
    shutdown.cancel();
    let status = status.map_err(Failure::classify)?;
    match crate::run::exit_code(status) {
        0 => Ok(()),
        code => Err(Failure::Exit(u8::try_from(code).unwrap_or(1))),
    }
}

/// The environment of `service`'s container; a Service with several ports gives its first
/// port's container.
async fn env_of(
    client: &kube::Client,
    namespace: &str,
    service: &str,
) -> Result<Vec<(String, String)>, Failure> {
    let any = PortSpec {
        local: 0,
        remote: None,
    };
    let found = match intercept::find(client, namespace, service, &[any]).await {
        Err(InterceptError::WhichPort { served, .. }) => {
            let first = served
                .first()
                .and_then(|p| p.split_whitespace().next())
                .ok_or_else(|| Failure::Failed(anyhow!("Service {service} serves no port")))?;
            let spec = PortSpec::parse(&format!("0:{first}")).map_err(super::intercept::fail)?;
            intercept::find(client, namespace, service, &[spec]).await
        }
        other => other,
    }
    .map_err(super::intercept::fail)?;
    let (_, vars) = intercept::env::of_found(client, &found)
        .await
        .map_err(super::intercept::fail)?;
    Ok(vars)
}
