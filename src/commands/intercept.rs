//! `tether intercept`, `leave`, `list`, `uninstall` and `agent`: the edges of
//! [`crate::intercept`] and [`crate::agent`], where their errors become reports.
//!
//! Ctrl-C (or SIGTERM) ends an intercept the way Telepresence users expect `leave` to:
//! the Service and Deployment are restored from their records, so nothing of tether's
//! stays in the cluster. If tether dies instead (SIGKILL, a crash, a laptop that sleeps),
//! the agent sends traffic back to the app within a second and stays installed: running
//! the same `tether intercept` again resumes on it without a rollout, and `tether leave`
//! or `tether uninstall` restores the specs.

use std::{path::PathBuf, time::Instant};

use anyhow::anyhow;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Failure;
use crate::{
    build::Registry,
    cluster::{AllowList, Cluster},
    intercept::{self, InstallKind, InterceptError, attach},
    tunnel::Filter,
};

fn fail(e: InterceptError) -> Failure {
    if e.is_bad_input() {
        Failure::BadInput(e.into())
    } else {
        Failure::Failed(e.into())
    }
}

/// Connects for a command that changes the cluster: the context guard reads the allow
/// list of the nearest `tether.toml`, else the user's config file.
async fn connect(context: Option<&str>) -> Result<Cluster, Failure> {
    let here = std::env::current_dir().map_err(|e| Failure::Failed(e.into()))?;
    let allow = AllowList::for_dir(&here).map_err(Failure::classify)?;
    Cluster::connect_guarded(context, &allow)
        .await
        .map_err(Failure::classify)
}

fn namespace_of(cluster: &Cluster, namespace: Option<String>) -> String {
    namespace.unwrap_or_else(|| cluster.client.default_namespace().to_owned())
}

/// The arguments of `tether intercept`.
pub struct InterceptArgs {
    pub service: String,
    pub port: u16,
    pub namespace: Option<String>,
    pub header: Vec<String>,
    pub env_file: Option<PathBuf>,
    pub context: Option<String>,
}

pub async fn intercept(args: InterceptArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let mut filter = Filter::default();
    for h in &args.header {
        let pair =
            Filter::parse_header(h).ok_or_else(|| fail(InterceptError::BadHeader(h.clone())))?;
        filter.headers.push(pair);
    }
    let cluster = connect(args.context.as_deref()).await?;
    let client = cluster.client.clone();
    let namespace = namespace_of(&cluster, args.namespace);

    // Everything that can refuse is read or checked before the first change.
    let found = intercept::find(&client, &namespace, &args.service, args.port)
        .await
        .map_err(fail)?;
    let local = intercept::local_listener(args.port).await.map_err(fail)?;
    let t = found.target.clone();
    let what = if filter.is_all() {
        "all traffic".to_owned()
    } else {
        let hs: Vec<String> = filter
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("HTTP requests with {}", hs.join(", "))
    };
    println!(
        "intercept: Service {} in {} port {} (Deployment {}, container {} port {}) → {local}, {what}",
        t.service, t.namespace, t.service_port, t.deployment, t.container, t.app_port
    );
    let registry = Registry::resolve(None, &client).await?;
    let image = intercept::image::ensure(&registry, |line| eprintln!("  {line}"))
        .await
        .map_err(fail)?;
    let (installed, kind) =
        intercept::install(&client, &found, &image, |line| println!("agent: {line}"))
            .await
            .map_err(fail)?;
    match kind {
        InstallKind::Present => println!("agent: already installed, resuming on it"),
        InstallKind::Fresh => println!(
            "agent: installed; Service port {} now leads to it",
            t.service_port
        ),
        InstallKind::Upgraded => println!("agent: replaced with this tether's version"),
    }

    if let Some(path) = &args.env_file {
        let d = &found.deployment;
        let container = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.iter().find(|c| c.name == installed.container));
        if let Some(container) = container {
            let pods = crate::deploy::Workload {
                kind: "Deployment".into(),
                namespace: namespace.clone(),
                name: t.deployment.clone(),
                selector: intercept::selector_of(d),
            }
            .pods(&client)
            .await
            .unwrap_or_default();
            let vars = intercept::env::resolve(&client, &namespace, container, pods.first())
                .await
                .map_err(fail)?;
            intercept::env::write(path, &vars)
                .map_err(|e| Failure::Failed(anyhow!("cannot write {}: {e}", path.display())))?;
            println!(
                "env: {} variables of container {} → {} (mode 0600)",
                vars.len(),
                container.name,
                path.display()
            );
        }
    }

    let shutdown = CancellationToken::new();
    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    let selector = intercept::selector_of(&found.deployment)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let attacher = tokio::spawn(attach::run(
        client.clone(),
        attach::Attach {
            namespace: namespace.clone(),
            selector,
            control_port: installed.control_port,
            local,
            filter,
        },
        event_tx,
        shutdown.clone(),
    ));
    let mut announced = false;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Failed(anyhow!("cannot watch for SIGTERM: {e}")))?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            Some(ev) = event_rx.recv() => match ev {
                attach::Event::Attached { pod, attached, ready } => {
                    println!("attached: pod {pod} ({attached}/{ready} replicas)");
                    if !announced && attached >= ready {
                        announced = true;
                        println!(
                            "ready: Service {} port {} reaches {local} ({:.1}s); Ctrl-C ends the intercept and restores the Service",
                            t.service,
                            t.service_port,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                attach::Event::Detached { pod, reason } => {
                    println!("detached: pod {pod}: {reason}");
                }
                attach::Event::LocalRefused { error } => {
                    eprintln!("warning: a connection could not reach the local process: {error}");
                }
            },
        }
    }
    shutdown.cancel();
    let _ = attacher.await;
    println!(
        "leaving: restoring Service {} and Deployment {} (Ctrl-C again to stop; then run `tether leave {}`)",
        t.service, t.deployment, t.service
    );
    tokio::select! {
        r = intercept::restore(&client, &namespace, &t.service) => {
            r.map_err(fail)?;
            println!("restored: Service {} and Deployment {} are as they were", t.service, t.deployment);
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => Err(Failure::Failed(anyhow!(
            "interrupted while restoring; run `tether leave {} -n {namespace}`", t.service
        ))),
    }
}

pub async fn leave(
    service: String,
    namespace: Option<String>,
    context: Option<String>,
) -> Result<(), Failure> {
    let cluster = connect(context.as_deref()).await?;
    let namespace = namespace_of(&cluster, namespace);
    let done = intercept::restore(&cluster.client, &namespace, &service)
        .await
        .map_err(fail)?;
    if !done.service && done.deployments.is_empty() {
        return Err(fail(InterceptError::NotIntercepted(service)));
    }
    println!(
        "restored: Service {service}{} in {namespace}",
        done.deployments
            .iter()
            .map(|d| format!(" and Deployment {d}"))
            .collect::<String>()
    );
    Ok(())
}

pub async fn list(namespace: Option<String>, context: Option<String>) -> Result<(), Failure> {
    // Reading only: no guard.
    let cluster = Cluster::connect(context.as_deref())
        .await
        .map_err(Failure::classify)?;
    let namespace = namespace_of(&cluster, namespace);
    let rows = intercept::list(&cluster.client, &namespace)
        .await
        .map_err(fail)?;
    if rows.is_empty() {
        println!("no Services in namespace {namespace}");
        return Ok(());
    }
    let w = |f: fn(&intercept::Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (a, b, c) = (
        w(|r| &r.service, "SERVICE"),
        w(|r| &r.ports, "PORTS"),
        w(|r| &r.workload, "WORKLOAD"),
    );
    println!(
        "{:a$}  {:b$}  {:c$}  INTERCEPT",
        "SERVICE", "PORTS", "WORKLOAD"
    );
    for r in &rows {
        println!(
            "{:a$}  {:b$}  {:c$}  {}",
            r.service, r.ports, r.workload, r.intercept
        );
    }
    Ok(())
}

pub async fn uninstall(all: bool, context: Option<String>) -> Result<(), Failure> {
    let cluster = connect(context.as_deref()).await?;
    let namespace = cluster.client.default_namespace().to_owned();
    let scope = (!all).then_some(namespace.as_str());
    let found = intercept::intercepted(&cluster.client, scope)
        .await
        .map_err(fail)?;
    if found.is_empty() {
        println!(
            "nothing to uninstall{}",
            if all {
                String::new()
            } else {
                format!(" in namespace {namespace} (--all for every namespace)")
            }
        );
        return Ok(());
    }
    let mut failures = Vec::new();
    for l in found {
        match intercept::restore(&cluster.client, &l.namespace, &l.service).await {
            Ok(_) => println!("restored: Service {} in {}", l.service, l.namespace),
            Err(e) => failures.push(format!("{} in {}: {e}", l.service, l.namespace)),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(anyhow!(
            "could not restore:\n  {}",
            failures.join("\n  ")
        )))
    }
}

pub async fn agent(args: Vec<String>) -> Result<(), Failure> {
    crate::agent::run(&args).await.map_err(|e| match e {
        crate::agent::AgentError::Args(_) => Failure::BadInput(e.into()),
        _ => Failure::Failed(e.into()),
    })
}
