//! `tether up`: load the project, check the context, run the session, and show it: the
//! TUI when stdout is a terminal, plain progress lines otherwise (or with `--no-tui`,
//! `--ci`). The control socket serves `tether status`, `logs` and `trigger` meanwhile.

use std::{io::IsTerminal as _, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Failure, policy, profile,
    project::{self, load},
    remove::remove,
};
use crate::{
    build::{Builder, Registry},
    cli::UpArgs,
    control::{
        Instance,
        server::{self, Control},
    },
    engine::{self, Event, Options, Session},
    forward,
    logs::LogLine,
    logs_history::History,
    plain,
    policy::{Action, Admission},
    tui::{self, Exit},
    watch,
};

/// Triggers (from `r` or `tether trigger`) that may wait while a round runs.
const TRIGGER_QUEUE: usize = 16;
/// Log lines queued between the followers and the history: a chatty pod waits here.
const LOG_QUEUE: usize = 1024;

pub async fn run(args: UpArgs) -> Result<(), Failure> {
    let UpArgs {
        target,
        ci,
        no_tui,
        timeout,
        no_live_update,
        profile,
        yes,
    } = args;
    // Sync changes that live-update rules cover instead of rebuilding.
    let live_update = !no_live_update;
    let project = load(&target)?;
    let profile = profile::choose(&project, profile.as_deref())?;
    // One `up` per folder, checked before anything binds a port, so a second one is told
    // who runs rather than that a port is in use.
    let instance = Instance::acquire(&project.root).map_err(|e| Failure::Failed(e.into()))?;
    let root = project.root.clone();
    let history = History::open(&root)?;
    let control_listener = instance.bind()?;
    let cluster =
        project::cluster(&target, &profile::allow_list(&project, profile.as_ref())).await?;
    // The policy the run starts under decides reloads too.
    let mut admission = None;
    let chosen = match &profile {
        Some(p) => {
            let (status, identity) = profile::resolve(&cluster, p).await?;
            // Every resource this run would deploy is decided before the first change.
            let actions: Vec<_> = project
                .resources
                .keys()
                .map(|r| Action::Instantiate(r.clone()))
                .collect();
            let policy = policy::admit(&cluster, &identity, p, &actions, yes).await?;
            admission = Some(Admission {
                policy,
                who: identity,
            });
            Some(status)
        }
        None => None,
    };
    let project = profile::apply(project, profile.as_ref().zip(chosen.as_ref()))?;
    let own_namespace = chosen.as_ref().map(|c| c.namespace.clone());
    let registry = Registry::resolve(project.registry.as_deref(), &cluster.client).await?;
    let deployer = profile::deployer(&cluster, &project, profile.as_ref())?;
    let builder = Builder::new(registry);
    let session_id = deployer.session().to_owned();

    // Forwards bind before anything else, so a port in use fails now, not after a build.
    // `--ci` ends when everything is ready and forwards nothing.
    let mut listeners = Vec::new();
    for r in project.resources.values().filter(|_| !ci) {
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
        live_update,
        profile: chosen
            .as_ref()
            .zip(admission)
            .map(|(c, admission)| crate::config::ProfileRun {
                name: c.name.clone(),
                user: c.user.clone(),
                admission,
            }),
    };
    // The followers' lines reach the views through the history: stored, then shown.
    let (log_tx, log_rx) = mpsc::channel::<LogLine>(LOG_QUEUE);
    let session = Session::new(
        project,
        builder,
        deployer,
        options,
        event_tx.clone(),
        log_tx,
        shutdown.clone(),
    );
    let to_views = event_tx.clone();
    session.tasks().spawn(
        history
            .clone()
            .write_and_pass(log_rx, move |line| to_views.send(Event::Log(line)).is_ok()),
    );
    let listed = session.resources().into_iter().map(|r| (r, Vec::new()));
    let (views, store) = engine::store::spawn(engine::State::new(listed.collect()), event_rx);
    let (trigger_tx, trigger_rx) = mpsc::channel(TRIGGER_QUEUE);
    let control = Arc::new(Control {
        state: views.state.clone(),
        history: history.clone(),
        trigger_tx: trigger_tx.clone(),
        root: root.clone(),
        profile: chosen.clone(),
    });
    tokio::spawn(server::serve(control_listener, control, shutdown.clone()));
    let use_tui = !ci && !no_tui && std::io::stdout().is_terminal();
    let printer = (!use_tui).then(|| tokio::spawn(print_progress(views.events.subscribe())));

    eprintln!(
        "tether up: context {} ({}), session {}{}",
        cluster.context,
        cluster.server,
        session_id,
        chosen
            .as_ref()
            .map(|c| format!(
                ", profile {} in namespace {} (user {})",
                c.name, c.namespace, c.user
            ))
            .unwrap_or_default()
    );
    let diagnostics = root.join(".tether").join("up.log");
    // The TUI starts before the first round, so it shows that round too. When it ends,
    // the session stops.
    let ui = use_tui.then(|| {
        let options = tui::Options {
            title: format!(
                "{} · context {} · session {}",
                root.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                cluster.context,
                session_id
            ),
            diagnostics: Some(diagnostics.clone()),
            scaler: crate::deploy::scale::Scaler {
                client: cluster.client.clone(),
                root: root.clone(),
                cluster_id: cluster.id.clone(),
            },
        };
        let ui = tui::run(
            views.clone(),
            history.clone(),
            trigger_tx.clone(),
            options,
            shutdown.clone(),
        );
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let exit = ui.await;
            shutdown.cancel();
            exit
        })
    });
    drop(trigger_tx);
    let tasks = session.tasks();
    if !ci {
        let (health_tx, mut health_rx) = mpsc::unbounded_channel();
        for (resource, remote, listener) in listeners {
            let Some(target) = session.forward_target(&resource) else {
                continue;
            };
            tasks.spawn(forward::serve(
                listener,
                resource,
                remote,
                target,
                health_tx.clone(),
                shutdown.clone(),
            ));
        }
        let (tx, stop) = (event_tx.clone(), shutdown.clone());
        // Ends with the shutdown, not with the last sender: a connection still open
        // through a forward (a keep-alive client) holds one until the process exits.
        tasks.spawn(async move {
            loop {
                let h = tokio::select! {
                    _ = stop.cancelled() => return,
                    h = health_rx.recv() => h,
                };
                let Some(h) = h else { return };
                let _ = tx.send(Event::Forward(h));
            }
        });
    }

    let failures = tokio::select! {
        f = session.start() => f,
        _ = shutdown.cancelled() => vec![engine::Failure {
            resource: "tether up".into(),
            error: Arc::new(engine::RoundError::Stopped),
        }],
    };
    if ci {
        // Stop followers, wait until they have ended, and let the views print what is
        // queued: the store ends with the last event sender.
        shutdown.cancel();
        drop((session, event_tx, views));
        tasks.close();
        tasks.wait().await;
        let _ = store.await;
        if let Some(printer) = printer {
            let _ = printer.await;
        }
        if failures.is_empty() {
            println!("all resources ready");
            return Ok(());
        }
        let report = failures
            .iter()
            .map(|f| format!("  {}: {}", f.resource, engine::report(&*f.error)))
            .collect::<Vec<_>>()
            .join("\n");
        let error = anyhow::anyhow!("not ready:\n{report}");
        // A shared instance that runs someone else's version is the user's to resolve.
        return Err(if failures.iter().any(|f| f.error.is_bad_input()) {
            Failure::BadInput(error)
        } else {
            Failure::Failed(error)
        });
    }

    if !shutdown.is_cancelled() {
        let (change_tx, change_rx) = mpsc::channel(16);
        let watch = match watch::spawn(&session.watch_roots(), change_tx, shutdown.clone()) {
            Ok(w) => w,
            Err(e) => {
                // Give the terminal back before the error is printed.
                shutdown.cancel();
                if let Some(ui) = ui {
                    let _ = ui.await;
                }
                return Err(e.into());
            }
        };
        let _ = event_tx.send(Event::Watching {
            folders: watch.folders(),
        });
        session.run(watch, change_rx, trigger_rx).await;
        // Also when the loop ended on its own (the watcher gone): the TUI must not
        // stay up over a session that no longer runs.
        shutdown.cancel();
    }
    let exit = match ui {
        None => Exit::Keep,
        Some(ui) => match ui.await {
            Ok(Ok(exit)) => exit,
            Ok(Err(e)) => return Err(Failure::Failed(e.into())),
            Err(e) => return Err(Failure::Failed(anyhow::anyhow!("the TUI task failed: {e}"))),
        },
    };
    // Forwards release their ports and followers stop before anything else happens;
    // then the plain view prints what is still queued.
    drop(session);
    tasks.close();
    tasks.wait().await;
    drop((event_tx, views));
    let _ = store.await;
    if let Some(printer) = printer {
        let _ = printer.await;
    }
    if std::fs::metadata(&diagnostics).is_ok_and(|m| m.len() > 0) {
        eprintln!(
            "tether up: diagnostics written while the TUI ran are in {}",
            diagnostics.display()
        );
    }
    match exit {
        Exit::Keep => {
            eprintln!("tether up: stopped. What was deployed stays; `tether down` removes it.");
            Ok(())
        }
        Exit::Remove => {
            eprintln!("tether up: stopped; removing what it deployed");
            // The session has stopped, so nothing re-applies what `down` deletes.
            let shared = profile
                .as_ref()
                .zip(chosen.as_ref().map(|c| c.user.as_str()));
            let result = remove(&cluster, &root, false, own_namespace.as_deref(), shared).await;
            drop(instance);
            result
        }
    }
}

/// The plain view: one line per event until the engine is gone.
async fn print_progress(mut events: tokio::sync::broadcast::Receiver<Event>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(ev) => {
                if let Some(line) = plain::line(&ev) {
                    println!("{line}");
                }
            }
            Err(RecvError::Lagged(n)) => println!("({n} events not shown: output fell behind)"),
            Err(RecvError::Closed) => return,
        }
    }
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
        tui::terminal::restore();
        std::process::exit(130);
    });
}
