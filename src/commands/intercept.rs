//! `tether intercept`, `leave`, `list`, `uninstall` and `agent`: the edges of
//! [`crate::intercept`] and [`crate::agent`], where their errors become reports.
//!
//! Ctrl-C (or SIGTERM) ends an intercept the way Telepresence users expect `leave` to:
//! tether's changes to the Service and Deployment are undone (others' are kept), unless
//! another laptop is still attached to the agents (a personal intercept of someone else),
//! in which case this laptop only detaches and the last one out restores. If tether dies
//! instead (SIGKILL, a crash, a laptop that sleeps), the agent sends traffic back to the
//! app within a second and stays installed: running the same `tether intercept` again
//! resumes on it without a rollout, and `tether leave` or `tether uninstall` restores.
//!
//! A running intercept ended elsewhere (`tether leave` in another terminal, `uninstall`,
//! the agent removed) says so and exits 1 at once, without restoring again: the process
//! did not end by its own user's request, and a script should be able to tell. An agent
//! that refuses this laptop (another laptop holds all traffic, or the same header filter)
//! gives its reason, and tether exits 1 without touching what the other laptop uses.

use std::{net::SocketAddr, time::Instant};

use anyhow::anyhow;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Failure,
    output::{self, Machine, OutputError, Shape},
};
use crate::{
    build::Registry,
    cli::{InterceptArgs, LeaveArgs, ListArgs, UninstallArgs},
    cluster::{AllowList, Cluster},
    connect::install,
    intercept::{
        self, InstallKind, InterceptError, PortSpec, attach, ended,
        leaving::{self, Decision},
    },
    tunnel::Filter,
};

pub(super) fn fail(e: InterceptError) -> Failure {
    if e.is_bad_input() {
        Failure::BadInput(e.into())
    } else {
        Failure::Failed(e.into())
    }
}

/// Connects for a command that changes the cluster: the context guard reads the allow
/// list of the nearest `tether.toml`, else the user's config file.
pub(super) async fn connect_guarded(context: Option<&str>) -> Result<Cluster, Failure> {
    let here = std::env::current_dir().map_err(|e| Failure::Failed(e.into()))?;
    let allow = AllowList::for_dir(&here).map_err(Failure::classify)?;
    Cluster::connect_guarded(context, &allow)
        .await
        .map_err(Failure::classify)
}

/// `-n`, else the kube context's namespace.
pub(super) fn namespace_of(cluster: &Cluster, namespace: Option<String>) -> String {
    namespace.unwrap_or_else(|| cluster.client.default_namespace().to_owned())
}

/// One event on stdout in the format `-o` asked for.
fn event(format: Machine, value: &serde_json::Value) -> Result<(), OutputError> {
    output::print(format, Shape::Event, value)
}

/// How `intercept` ended, when it did not fail.
enum Ended {
    /// Ctrl-C or SIGTERM: this laptop leaves.
    Asked,
    /// Someone else ended it (the reason): nothing to restore.
    Elsewhere(String),
    /// An agent refused this laptop (pod, reason): nothing of ours to restore.
    Refused(String, String),
}

pub async fn intercept(args: InterceptArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let machine = output::machine(args.output);
    // With `-o json|yaml` stdout carries only the document; progress goes to stderr.
    let say = |line: &str| {
        if machine.is_some() {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let ports = args
        .port
        .iter()
        .map(|p| PortSpec::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let mut filter = Filter::default();
    for h in &args.header {
        let pair =
            Filter::parse_header(h).ok_or_else(|| fail(InterceptError::BadHeader(h.clone())))?;
        filter.headers.push(pair);
    }
    let cluster = connect_guarded(args.context.as_deref()).await?;
    let client = cluster.client.clone();
    let namespace = namespace_of(&cluster, args.namespace.clone());
    let intercepting = crate::policy::Action::Intercept(args.service.clone());
    let profile = args.profile.as_deref();
    super::policy::guard(&cluster, profile, &namespace, intercepting, args.yes).await?;

    // Everything that can refuse is read or checked before the first change.
    let found = intercept::find(&client, &namespace, &args.service, &ports)
        .await
        .map_err(fail)?;
    let mut local_ports: Vec<u16> = ports.iter().map(|p| p.local).collect();
    local_ports.sort_unstable();
    local_ports.dedup();
    // With `-- CMD`, CMD is started first, under `tether run` publishing the local ports.
    let mut local_cmd = match args.command.as_slice() {
        [] => None,
        command => Some(start_local(command, &args, &namespace, &local_ports).await?),
    };
    // Service port → where the local process listens for it.
    let mut local_of: Vec<(i32, SocketAddr)> = Vec::with_capacity(ports.len());
    for (p, target) in ports.iter().zip(&found.targets) {
        let addr = intercept::local_listener(p.local).await.map_err(fail)?;
        local_of.push((target.service_port, addr));
    }
    let t = found.first().clone();
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
    for (target, (_, local)) in found.targets.iter().zip(&local_of) {
        say(&format!(
            "intercept: Service {} in {} port {} (Deployment {}, container {} port {}) → {local}, {what}",
            target.service,
            target.namespace,
            target.service_port,
            target.deployment,
            target.container,
            target.app_port
        ));
    }
    let registry = Registry::resolve(None, &client).await?;
    let image = intercept::image::ensure(&registry, |line| eprintln!("  {line}"))
        .await
        .map_err(fail)?;
    let install = intercept::install(&client, &found, &image, |line| {
        say(&format!("agent: {line}"))
    })
    .await
    .map_err(fail)?;
    let installed = &install.installed;
    let service_ports = installed
        .service_ports()
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match install.kind {
        InstallKind::Present => say("agent: already installed, resuming on it"),
        InstallKind::Fresh if installed.ports.len() == 1 => say(&format!(
            "agent: installed; Service port {service_ports} now leads to it"
        )),
        InstallKind::Fresh => say(&format!(
            "agent: installed; Service ports {service_ports} now lead to it"
        )),
        InstallKind::Upgraded => say("agent: replaced with this tether's version"),
    }

    if let Some(path) = &args.env_file {
        write_env(&client, &found, path, &say).await?;
    }

    let shutdown = CancellationToken::new();
    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    let selector = found
        .pod_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let me = attach::whoami();
    let sessions = attach::Sessions::default();
    let attacher = tokio::spawn(attach::run(
        client.clone(),
        attach::Attach {
            namespace: namespace.clone(),
            selector,
            control_port: installed.control_port,
            locals: installed
                .ports
                .iter()
                .filter_map(|p| {
                    let (_, local) = local_of.iter().find(|(s, _)| *s == p.service_port)?;
                    Some((p.agent_port, *local))
                })
                .collect(),
            filter: filter.clone(),
            token: install.token.clone(),
            name: me.clone(),
        },
        sessions.clone(),
        event_tx,
        shutdown.clone(),
    ));
    let elsewhere = ended::ended_elsewhere(
        client.clone(),
        namespace.clone(),
        t.service.clone(),
        t.deployment.clone(),
    );
    tokio::pin!(elsewhere);
    let mut announced = false;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Failed(anyhow!("cannot watch for SIGTERM: {e}")))?;
    let ended = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ended::Asked,
            _ = term.recv() => break Ended::Asked,
            why = &mut elsewhere => break Ended::Elsewhere(why),
            status = local_exit(&mut local_cmd) => {
                say(&format!("the local process exited ({status}); leaving"));
                break Ended::Asked;
            }
            Some(ev) = event_rx.recv() => match ev {
                attach::Event::Attached { pod, attached, ready } => {
                    say(&format!("attached: pod {pod} ({attached}/{ready} replicas)"));
                    if !announced && attached >= ready {
                        announced = true;
                        // A closed stdout must not skip the restore below: warn and go on.
                        if let Err(e) = ready_line(machine, &found, &local_of, &filter, started.elapsed().as_secs_f64()) {
                            eprintln!("warning: {:#}", anyhow::Error::from(e));
                        }
                    }
                }
                attach::Event::Detached { pod, reason } => {
                    say(&format!("detached: pod {pod}: {reason}"));
                }
                attach::Event::Refused { pod, reason } => break Ended::Refused(pod, reason),
                attach::Event::LocalRefused { error } => {
                    eprintln!("warning: a connection could not reach the local process: {error}");
                }
            },
        }
    };
    let decision = match &ended {
        // Ask before detaching: the answers travel on this laptop's sessions.
        Ended::Asked => {
            let openers: Vec<_> = sessions
                .lock()
                .map(|s| s.values().cloned().collect())
                .unwrap_or_default();
            leaving::decide((&me, &filter), &leaving::ask(openers).await)
        }
        Ended::Elsewhere(_) | Ended::Refused(..) => Decision::Stay { others: Vec::new() },
    };
    shutdown.cancel();
    let _ = attacher.await;
    match ended {
        Ended::Elsewhere(why) => {
            return Err(Failure::Failed(anyhow!(
                "the intercept was ended elsewhere: {why}; nothing left to restore"
            )));
        }
        Ended::Refused(pod, reason) => {
            return Err(Failure::Failed(anyhow!(
                "the agent in pod {pod} refused this laptop: {reason}\n  (nothing was changed; the laptop attached now keeps the intercept)"
            )));
        }
        Ended::Asked => {}
    }
    if let Decision::Stay { others } = decision {
        say(&format!(
            "leaving: {} still attached, so the agent stays for them; the last one out restores Service {}",
            others.join(", "),
            t.service
        ));
        return Ok(());
    }
    say(&format!(
        "leaving: restoring Service {} and Deployment {} (Ctrl-C again to stop; then run `tether leave {}`)",
        t.service, t.deployment, t.service
    ));
    tokio::select! {
        r = intercept::restore(&client, &namespace, &t.service) => {
            r.map_err(fail)?;
            say(&format!("restored: tether's changes to Service {} and Deployment {} are undone", t.service, t.deployment));
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => Err(Failure::Failed(anyhow!(
            "interrupted while restoring; run `tether leave {} -n {namespace}`", t.service
        ))),
    }
}

/// `ready: …`, or with `-o json|yaml` one event on stdout. The first port's fields stay at
/// the top (as with one `-p`); `ports` lists every one.
fn ready_line(
    machine: Option<Machine>,
    found: &intercept::Found,
    local_of: &[(i32, SocketAddr)],
    filter: &Filter,
    secs: f64,
) -> Result<(), OutputError> {
    let t = found.first();
    let local = |service_port: i32| {
        local_of
            .iter()
            .find(|(s, _)| *s == service_port)
            .map(|(_, l)| l.to_string())
            .unwrap_or_default()
    };
    if let Some(m) = machine {
        let ports: Vec<serde_json::Value> = found
            .targets
            .iter()
            .map(|p| {
                serde_json::json!({
                    "service_port": p.service_port,
                    "container": p.container,
                    "app_port": p.app_port,
                    "local": local(p.service_port),
                })
            })
            .collect();
        event(
            m,
            &serde_json::json!({
                "event": "ready",
                "service": t.service,
                "namespace": t.namespace,
                "service_port": t.service_port,
                "deployment": t.deployment,
                "container": t.container,
                "app_port": t.app_port,
                "local": local(t.service_port),
                "ports": ports,
                "headers": filter.headers,
                "seconds": secs,
            }),
        )
    } else {
        let reach: Vec<String> = found
            .targets
            .iter()
            .map(|p| format!("port {} reaches {}", p.service_port, local(p.service_port)))
            .collect();
        println!(
            "ready: Service {} {} ({secs:.1}s); Ctrl-C ends the intercept and restores the Service",
            t.service,
            reach.join(", ")
        );
        Ok(())
    }
}

/// `--env-file`: the intercepted container's environment, resolved as in a pod.
async fn write_env(
    client: &kube::Client,
    found: &intercept::Found,
    path: &std::path::Path,
    say: &impl Fn(&str),
) -> Result<(), Failure> {
    let (container, vars) = intercept::env::of_found(client, found)
        .await
        .map_err(fail)?;
    intercept::env::write(path, &vars).map_err(|e| {
        Failure::Failed(anyhow!(e).context(format!("cannot write {}", path.display())))
    })?;
    say(&format!(
        "env: {} variables of container {container} → {} (mode 0600)",
        vars.len(),
        path.display()
    ));
    Ok(())
}

pub async fn leave(args: LeaveArgs) -> Result<(), Failure> {
    let cluster = connect_guarded(args.context.as_deref()).await?;
    let namespace = namespace_of(&cluster, args.namespace);
    let service = args.service;
    let done = intercept::restore(&cluster.client, &namespace, &service)
        .await
        .map_err(fail)?;
    if done.is_empty() {
        return Err(fail(InterceptError::NotIntercepted(service)));
    }
    if let Some(m) = output::machine(args.output) {
        return Ok(event(
            m,
            &serde_json::json!({
                "service": service,
                "namespace": namespace,
                "restored_service": done.service,
                "restored_deployments": done.deployments,
                "deleted_secrets": done.secrets,
            }),
        )?);
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

pub async fn list(args: ListArgs) -> Result<(), Failure> {
    // Reading only: no guard.
    let cluster = Cluster::connect(args.context.as_deref())
        .await
        .map_err(Failure::classify)?;
    let namespace = (!args.all_namespaces).then(|| namespace_of(&cluster, args.namespace));
    let rows = intercept::list(&cluster.client, namespace.as_deref())
        .await
        .map_err(fail)?;
    if let Some(m) = output::machine(args.output) {
        output::print(m, Shape::Document, &rows)?;
        return Ok(());
    }
    if rows.is_empty() {
        match &namespace {
            Some(ns) => println!("no Services in namespace {ns}"),
            None => println!("no Services"),
        }
        return Ok(());
    }
    let w = |f: fn(&intercept::Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (n, a, b, c) = (
        w(|r| &r.namespace, "NAMESPACE"),
        w(|r| &r.service, "SERVICE"),
        w(|r| &r.ports, "PORTS"),
        w(|r| &r.workload, "WORKLOAD"),
    );
    let all = namespace.is_none();
    let ns_col = |v: &str| {
        if all {
            format!("{v:n$}  ")
        } else {
            String::new()
        }
    };
    println!(
        "{}{:a$}  {:b$}  {:c$}  INTERCEPT",
        ns_col("NAMESPACE"),
        "SERVICE",
        "PORTS",
        "WORKLOAD"
    );
    for r in &rows {
        println!(
            "{}{:a$}  {:b$}  {:c$}  {}",
            ns_col(&r.namespace),
            r.service,
            r.ports,
            r.workload,
            r.intercept
        );
    }
    Ok(())
}

pub async fn uninstall(args: UninstallArgs) -> Result<(), Failure> {
    let cluster = connect_guarded(args.context.as_deref()).await?;
    if args.connect {
        return uninstall_connect(&cluster).await.map(|_| ());
    }
    let namespace = (!args.all_namespaces).then(|| namespace_of(&cluster, args.namespace));
    // The connect agent goes with every agent, and before the orphan scan of its own
    // namespace would take its Secret alone.
    let connect_gone = if namespace.is_none() || namespace.as_deref() == Some(install::NAMESPACE) {
        uninstall_connect(&cluster).await?
    } else {
        false
    };
    let found = intercept::intercepted(&cluster.client, namespace.as_deref())
        .await
        .map_err(fail)?;
    let orphans = intercept::orphan_secrets(&cluster.client, namespace.as_deref())
        .await
        .map_err(fail)?;
    for o in &orphans {
        println!("deleted: attach Secret {o}, which no agent used");
    }
    if found.is_empty() && orphans.is_empty() && !connect_gone {
        match &namespace {
            Some(ns) => println!("nothing to uninstall in namespace {ns} (-A for every namespace)"),
            None => println!("nothing to uninstall"),
        }
        return Ok(());
    }
    let mut failures = Vec::new();
    for l in found {
        match intercept::restore(&cluster.client, &l.namespace, &l.service).await {
            Ok(_) => println!("restored: Service {} in {}", l.service, l.namespace),
            Err(e) => failures.push(format!(
                "{} in {}: {:#}",
                l.service,
                l.namespace,
                anyhow!(e)
            )),
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

/// How long `-- CMD` may take to start serving its port.
const LOCAL_START: std::time::Duration = std::time::Duration::from_secs(120);

/// Starts `command` as `tether run -n NS -p LOCAL… --env-from SERVICE -- command` and
/// waits until it serves every port: a connection to a published port that CMD does not
/// take is closed at once by the run's stack, one it took stays open.
async fn start_local(
    command: &[std::ffi::OsString],
    args: &InterceptArgs,
    namespace: &str,
    ports: &[u16],
) -> Result<tokio::process::Child, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::Failed(e.into()))?;
    let mut run = tokio::process::Command::new(exe);
    run.args(["run", "-n", namespace]);
    for port in ports {
        run.args(["-p", &port.to_string()]);
    }
    run.args(["--env-from", &args.service]);
    if let Some(context) = &args.context {
        run.args(["--context", context]);
    }
    run.arg("--").args(command).kill_on_drop(true);
    let mut child = run
        .spawn()
        .map_err(|e| Failure::Failed(anyhow!("cannot start `tether run`: {e}")))?;
    let deadline = Instant::now() + LOCAL_START;
    loop {
        let mut waiting = None;
        for port in ports {
            if !serves(*port).await {
                waiting = Some(*port);
                break;
            }
        }
        let exited = child.try_wait().ok().flatten();
        let port = match (waiting, exited) {
            (_, Some(status)) => {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                return Err(Failure::Failed(anyhow!(
                    "the local process exited ({status}) before it served port {}; nothing was changed in the cluster",
                    list.join(", ")
                )));
            }
            (None, None) => return Ok(child),
            (Some(port), None) => port,
        };
        if Instant::now() > deadline {
            return Err(Failure::Failed(anyhow!(
                "the local process did not serve port {port} within {} s",
                LOCAL_START.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Whether something took a connection to 127.0.0.1:`port` and kept it open a moment.
async fn serves(port: u16) -> bool {
    use tokio::io::AsyncReadExt as _;
    let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut byte = [0u8; 1];
    // Closed (or reset) at once: nothing took it. Still open: CMD did.
    tokio::time::timeout(std::time::Duration::from_millis(300), conn.read(&mut byte))
        .await
        .is_err()
}

/// Resolves when `-- CMD` exits; never without one.
async fn local_exit(child: &mut Option<tokio::process::Child>) -> String {
    match child {
        Some(c) => c
            .wait()
            .await
            .map_or_else(|e| e.to_string(), |s| s.to_string()),
        None => std::future::pending().await,
    }
}

/// Removes the connect agent's objects; whether there were any.
async fn uninstall_connect(cluster: &Cluster) -> Result<bool, Failure> {
    let gone = install::remove(&cluster.client)
        .await
        .map_err(Failure::classify)?;
    for g in &gone {
        println!("deleted: {g} (the connect agent)");
    }
    Ok(!gone.is_empty())
}
