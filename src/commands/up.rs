//! `tether up`: load the project, check the context, run the session, print progress.

use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Failure;
use crate::{
    build::{Builder, Registry},
    cli::Target,
    cluster::Cluster,
    config::{self, Project},
    deploy::Deployer,
    engine::{self, Event, Options, Session, progress},
    forward, watch,
};

pub async fn run(target: Target, ci: bool, _no_tui: bool, timeout: u64) -> Result<(), Failure> {
    let project = load(&target)?;
    let cluster = Cluster::connect(target.context.as_deref()).await?;
    let config_file = project.root.join(config::FILE_NAME);
    cluster
        .check_allowed(&project.allow_contexts, &config_file.display().to_string())
        .map_err(|e| Failure::BadInput(e.into()))?;
    let registry = Registry::resolve(project.registry.as_deref(), &cluster.client).await?;
    let deployer = Deployer::new(cluster.client.clone(), &project.root, &cluster.context)?;
    let builder = Builder::new(registry);
    let session_id = deployer.session().to_owned();

    // Forwards bind before anything else, so a port in use fails now, not after a build.
    let mut listeners = Vec::new();
    for r in project.resources.values() {
        for pf in &r.port_forwards {
            let l = forward::bind(pf.local).await.with_context(|| {
                format!(
                    "resource `{}`: cannot listen on localhost:{}",
                    r.name, pf.local
                )
            })?;
            listeners.push((r.name.clone(), pf.remote, l));
        }
    }

    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let (event_tx, event_rx) = mpsc::unbounded_channel::<Event>();
    let options = Options {
        ci,
        timeout: Duration::from_secs(timeout),
    };
    let session = Session::new(
        project,
        builder,
        deployer,
        options,
        event_tx.clone(),
        shutdown.clone(),
    );
    let (views, store) =
        engine::store::spawn(engine::State::new(session.images_by_resource()), event_rx);
    let printer = tokio::spawn(print_progress(views.events.subscribe()));

    eprintln!(
        "tether up: context {} ({}), session {}",
        cluster.context, cluster.server, session_id
    );
    if !ci {
        let (health_tx, mut health_rx) = mpsc::unbounded_channel();
        for (resource, remote, listener) in listeners {
            let Some(target) = session.forward_target(&resource) else {
                continue;
            };
            tokio::spawn(forward::serve(
                listener,
                cluster.client.clone(),
                resource,
                remote,
                target,
                health_tx.clone(),
                shutdown.clone(),
            ));
        }
        let tx = event_tx.clone();
        tokio::spawn(async move {
            while let Some(h) = health_rx.recv().await {
                let _ = tx.send(Event::Forward(h));
            }
        });
    }

    let failures = session.start().await;
    if ci {
        // Stop followers and let the views print what is queued.
        shutdown.cancel();
        drop((session, event_tx, views));
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = store.await;
            let _ = printer.await;
        })
        .await;
        if failures.is_empty() {
            println!("all resources ready");
            return Ok(());
        }
        let report = failures
            .iter()
            .map(|f| format!("  {}: {}", f.resource, f.error))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Failure::Failed(anyhow::anyhow!("not ready:\n{report}")));
    }

    let (change_tx, change_rx) = mpsc::channel(16);
    let folders = watch::spawn(&session.watch_roots(), change_tx, shutdown.clone())?;
    let _ = event_tx.send(Event::Watching { folders });
    let (_trigger_tx, trigger_rx) = mpsc::channel(4);
    session.run(change_rx, trigger_rx).await;
    eprintln!("tether up: stopped. What was deployed stays; `tether down` removes it.");
    Ok(())
}

/// The plain view: one line per event until the engine is gone.
async fn print_progress(mut events: tokio::sync::broadcast::Receiver<Event>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(ev) => {
                if let Some(line) = progress::line(&ev) {
                    println!("{line}");
                }
            }
            Err(RecvError::Lagged(n)) => println!("({n} events not shown: output fell behind)"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Loads tether.toml; a config error is bad input (exit 2) and names file:line:col.
pub fn load(target: &Target) -> Result<Project, Failure> {
    Project::load(&target.dir).map_err(|e| Failure::BadInput(e.into()))
}

/// Ctrl-C or SIGTERM stops the session; a second Ctrl-C exits at once.
fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("tether up: stopping (Ctrl-C again to exit at once)");
        shutdown.cancel();
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
}
