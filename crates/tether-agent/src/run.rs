//! `tether-agent ARGS` (the traffic agent) and `tether-agent connect ARGS` (the connect
//! agent): parses the arguments, reads the token from the environment, binds the ports and
//! serves until SIGTERM or SIGINT. The live-update roles `supervise` and `copy-self` are
//! dispatched from here too, and exit with codes of their own (the app's, for `supervise`).

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    args::AgentArgs,
    connect::{ConnectAgent, ConnectArgs, resolve::ClusterDns},
    error::AgentError,
    server::Agent,
};

pub async fn run(args: &[String]) -> Result<(), AgentError> {
    match args.first().map(String::as_str) {
        Some("connect") => return run_connect(&args[1..]).await,
        Some("supervise") => std::process::exit(super::supervise::main(&args[1..]).await),
        Some("copy-self") => std::process::exit(super::copy_self::main(&args[1..])),
        _ => {}
    }
    let args = AgentArgs::try_parse_from(args).map_err(AgentError::Args)?;
    let config = args.config(|name| std::env::var(name).ok());
    if config.token.is_none() {
        tracing::warn!(
            "{} is unset: every laptop will be refused",
            super::args::TOKEN_ENV
        );
    }
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Bind { addr, source })
    };
    // Every port is bound before any is served: a port that cannot be bound fails the
    // agent at once (its pod is not ready), never half of an intercept.
    let mut traffic = Vec::with_capacity(args.ports.len());
    for port in &args.ports {
        traffic.push((
            bind(SocketAddr::from(([0, 0, 0, 0], port.listen))).await?,
            port.app_addr(),
        ));
    }
    let control = bind(SocketAddr::from(([127, 0, 0, 1], args.control))).await?;
    let agent = Agent::new(config);
    let shutdown = CancellationToken::new();
    let routes: Vec<String> = args
        .ports
        .iter()
        .map(|p| format!(":{} → app :{}", p.listen, p.app))
        .collect();
    tracing::info!(
        "tether-agent {}: traffic on {}, laptops on 127.0.0.1:{}",
        env!("CARGO_PKG_VERSION"),
        routes.join(", "),
        args.control
    );
    tokio::spawn({
        let (agent, shutdown) = (agent.clone(), shutdown.clone());
        async move { agent.serve_control(control, shutdown).await }
    });
    for (listener, app) in traffic {
        let (agent, shutdown) = (agent.clone(), shutdown.clone());
        tokio::spawn(async move { agent.serve_traffic(listener, app, shutdown).await });
    }
    wait_for_signal().await;
    shutdown.cancel();
    Ok(())
}

async fn run_connect(args: &[String]) -> Result<(), AgentError> {
    let args = ConnectArgs::try_parse_from(args).map_err(AgentError::Args)?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let config = args.config(|name| std::env::var(name).ok(), &resolv);
    if config.token.is_none() {
        tracing::warn!(
            "{} is unset: every laptop will be refused",
            super::args::TOKEN_ENV
        );
    }
    let dns = ClusterDns::from_system(&config.domain).map_err(AgentError::Dns)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.control));
    let control = TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Bind { addr, source })?;
    tracing::info!(
        "tether connect agent {}: laptops on {addr}, cluster domain {}",
        env!("CARGO_PKG_VERSION"),
        config.domain
    );
    let agent = ConnectAgent::new(config, dns);
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { agent.serve_control(control, shutdown).await }
    });
    wait_for_signal().await;
    shutdown.cancel();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
