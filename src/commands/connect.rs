//! `tether connect`: the edge of [`crate::connect`]. It runs in the foreground, as
//! `tether intercept` does, until Ctrl-C, SIGTERM or `tether connect --quit` from another
//! terminal; SIGKILL leaves nothing on the laptop to restore (the proxy and DNS server are
//! loopback sockets of this process, the session file names a dead pid and is replaced).
//!
//! The first `connect` to a cluster installs the connect agent; later ones reuse it. The
//! session's link reconnects by itself (the API server restarted, the agent's pod was
//! replaced) and says so; clients meanwhile get errors, never a hang.

use std::{net::SocketAddr, time::Instant};

use anyhow::anyhow;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    Classified, Failure,
    intercept::{connect_guarded, namespace_of},
    output::{self, Machine, OutputError, Shape},
    policy,
};
use crate::{
    cli::ConnectArgs,
    connect::{
        ConnectError, control, dns,
        held::{self, Held},
        link::Event,
        proxy, session,
    },
    policy::Action,
};

impl Classified for ConnectError {
    fn is_bad_input(&self) -> bool {
        self.is_bad_input()
    }
}

fn fail(e: ConnectError) -> Failure {
    Failure::classify(e)
}

pub async fn run(args: ConnectArgs) -> Result<(), Failure> {
    let dir = held::dir().map_err(fail)?;
    let machine = output::machine(args.output);
    if args.status || args.quit {
        return ask(&dir, if args.quit { "quit" } else { "status" }, machine).await;
    }
    let started = Instant::now();
    let cluster = connect_guarded(args.context.as_deref()).await?;
    let client = cluster.client.clone();
    let namespace = namespace_of(&cluster, args.namespace.clone());
    let profile = args.profile.as_deref();
    policy::guard(&cluster, profile, &namespace, Action::Connect, args.yes).await?;
    if let Some(h) = held::read(&dir) {
        if h.cluster == cluster.id && h.namespace == namespace {
            println!(
                "already connected to {} (namespace {}): proxy {}, DNS {}, pid {}",
                h.context, h.namespace, h.proxy, h.dns, h.pid
            );
            return Ok(());
        }
        return Err(fail(ConnectError::HeldElsewhere {
            context: h.context,
            namespace: h.namespace,
            pid: h.pid,
        }));
    }
    session::check_namespace(&client, &namespace)
        .await
        .map_err(fail)?;
    // Listening first: a port in use is refused before anything changes in the cluster.
    let proxy_listener = listen_tcp(args.proxy_port, "--proxy-port").await?;
    let dns_socket = listen_udp(args.dns_port, "--dns-port").await?;
    let proxy_addr = proxy_listener
        .local_addr()
        .map_err(|e| Failure::Failed(e.into()))?;
    let dns_addr = dns_socket
        .local_addr()
        .map_err(|e| Failure::Failed(e.into()))?;

    let shutdown = CancellationToken::new();
    let session::Opened { net, mut events } =
        session::open(&client, &namespace, shutdown.clone(), |line| {
            eprintln!("  {line}")
        })
        .await
        .map_err(fail)?;
    let me = Held {
        pid: std::process::id(),
        context: cluster.context.clone(),
        cluster: cluster.id.clone(),
        namespace: namespace.clone(),
        proxy: proxy_addr,
        dns: dns_addr,
    };
    let socket = held::socket(&dir);
    let _ = std::fs::remove_file(&socket);
    let control_listener = tokio::net::UnixListener::bind(&socket).map_err(|source| {
        fail(ConnectError::State {
            what: "cannot listen on",
            path: socket.clone(),
            source,
        })
    })?;
    held::write(&dir, &me).map_err(fail)?;
    tokio::spawn(proxy::serve(proxy_listener, net.clone(), shutdown.clone()));
    tokio::spawn(dns::serve(dns_socket, net.clone(), shutdown.clone()));
    let quit = CancellationToken::new();
    tokio::spawn({
        let (net, me, quit) = (net.clone(), me.clone(), quit.clone());
        control::serve(
            control_listener,
            move || control::Status::new(me.clone(), net.link().pod(), net.stats()),
            quit,
        )
    });
    let ms = started.elapsed().as_millis();
    if let Some(m) = machine {
        output::print(
            m,
            Shape::Event,
            &serde_json::json!({
                "connected": true, "context": me.context, "namespace": me.namespace,
                "proxy": me.proxy, "dns": me.dns, "pid": me.pid, "ms": ms,
            }),
        )?;
    } else {
        println!(
            "connected to {} in {ms} ms: cluster names from namespace {namespace}\n  \
             SOCKS5/HTTP proxy {proxy_addr}   e.g. curl --proxy socks5h://{proxy_addr} http://SERVICE.{namespace}/\n  \
             DNS {dns_addr} (cluster names only)\n  \
             `tether run -- CMD` for programs that know no proxy; Ctrl-C or `tether connect --quit` ends this",
            me.context
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Failed(e.into()))?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = quit.cancelled() => break,
            event = events.recv() => match event {
                Some(event @ (Event::Lost { .. } | Event::Connected { .. })) => eprintln!("connect: {event}"),
                Some(Event::Refused { reason }) => {
                    held::remove(&dir);
                    return Err(fail(ConnectError::Refused(reason)));
                }
                None => break,
            },
        }
    }
    shutdown.cancel();
    quit.cancel();
    held::remove(&dir);
    // Let the link say goodbye to the agent.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    println!("disconnected");
    Ok(())
}

async fn listen_tcp(port: u16, flag: &'static str) -> Result<TcpListener, Failure> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| fail(ConnectError::Listen { addr, flag, source }))
}

async fn listen_udp(port: u16, flag: &'static str) -> Result<tokio::net::UdpSocket, Failure> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::net::UdpSocket::bind(addr)
        .await
        .map_err(|source| fail(ConnectError::Listen { addr, flag, source }))
}

/// `--status` and `--quit`: one question to the running session.
async fn ask(
    dir: &std::path::Path,
    request: &str,
    machine: Option<Machine>,
) -> Result<(), Failure> {
    let Some(h) = held::read(dir) else {
        if let Some(m) = machine {
            output::print(m, Shape::Event, &serde_json::json!({ "connected": false }))?;
        } else {
            println!("not connected");
        }
        return Ok(());
    };
    let answer = control::ask(&held::socket(dir), request)
        .await
        .map_err(fail)?;
    if request == "quit" {
        println!("disconnecting the session of pid {}", h.pid);
        return Ok(());
    }
    let status: control::Status = serde_json::from_str(answer.trim())
        .map_err(|e| Failure::Failed(anyhow!("the session's status: {e}")))?;
    if let Some(m) = machine {
        let mut v = serde_json::to_value(&status).map_err(OutputError::Json)?;
        v["connected"] = true.into();
        output::print(m, Shape::Event, &v)?;
        return Ok(());
    }
    println!(
        "connected to {} (namespace {}), pid {}\n  proxy {}   DNS {}\n  agent: {}\n  connections: {} open, {} in all; {} bytes out, {} bytes in; {} lookups",
        status.held.context,
        status.held.namespace,
        status.held.pid,
        status.held.proxy,
        status.held.dns,
        status.agent.as_deref().unwrap_or("reconnecting…"),
        status.open_connections,
        status.connections,
        status.bytes_out,
        status.bytes_in,
        status.lookups,
    );
    if let Some(f) = &status.last_failure {
        println!("  last failure: {f}");
    }
    Ok(())
}
