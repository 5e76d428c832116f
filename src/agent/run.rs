//! `tether agent ARGS`: parses the arguments, reads the token from the environment, binds
//! both ports and serves until SIGTERM or SIGINT.

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{args::AgentArgs, error::AgentError, server::Agent};

pub async fn run(args: &[String]) -> Result<(), AgentError> {
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
    let traffic = bind(SocketAddr::from(([0, 0, 0, 0], args.listen))).await?;
    let control = bind(SocketAddr::from(([127, 0, 0, 1], args.control))).await?;
    let agent = Agent::new(config);
    let shutdown = CancellationToken::new();
    tracing::info!(
        "tether agent {}: traffic on :{} → app :{}, laptops on 127.0.0.1:{}",
        env!("CARGO_PKG_VERSION"),
        args.listen,
        args.app_port,
        args.control
    );
    tokio::spawn({
        let (agent, shutdown) = (agent.clone(), shutdown.clone());
        async move { agent.serve_control(control, shutdown).await }
    });
    tokio::spawn({
        let (agent, shutdown) = (agent.clone(), shutdown.clone());
        async move { agent.serve_traffic(traffic, shutdown).await }
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
