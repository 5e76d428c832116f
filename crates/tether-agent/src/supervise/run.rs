//! `tether-agent supervise ARGS -- ARGV`: parses the arguments, binds the control port,
//! starts the app, serves laptops, and returns the exit code to exit with: the app's own
//! when it exits (128 + N for signal N), so the kubelet sees the app's crash as the
//! container's.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;

use super::{args::SuperviseArgs, error::SuperviseError, reaper::Reaper, serve::Supervision};

/// The signals passed on to the app. SIGTERM and SIGINT end it (it decides how), and the
/// supervisor exits after it.
const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];
/// How long the requests being answered may hold up an exit after the app exited.
const LINGER: Duration = Duration::from_secs(5);

/// Runs the supervisor; returns the code to exit with. Errors are reported here.
pub async fn main(args: &[String]) -> i32 {
    match supervise(args).await {
        Ok(code) => code,
        Err(SuperviseError::Args(e)) => {
            let _ = e.print();
            e.exit_code()
        }
        Err(e) => {
            eprintln!("tether supervise: {}", super::serve::chain(&e));
            e.exit_code()
        }
    }
}

async fn supervise(args: &[String]) -> Result<i32, SuperviseError> {
    let args = SuperviseArgs::try_parse_from(args).map_err(SuperviseError::Args)?;
    let config = args.config(std::env::vars_os());
    // Bound before the app starts: a port taken is a crash now, not a silent live update.
    let addr = SocketAddr::from(([127, 0, 0, 1], args.control));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SuperviseError::Bind { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let reaper = Reaper::start(std::process::id() == 1).map_err(SuperviseError::Reaper)?;
    // Before the app starts, so a signal is never the default (death of the supervisor
    // alone, with the app orphaned).
    let signal_rx = forward_signals().map_err(SuperviseError::Reaper)?;
    let (supervision, keeper, started) = Supervision::start(config, reaper)?;
    eprintln!(
        "tether supervise: laptops on {addr}; {} synced file{} replayed; the app runs{} as pid {}",
        started.replayed,
        if started.replayed == 1 { "" } else { "s" },
        if started.stored_program {
            " from its synced program"
        } else {
            ""
        },
        started.pid
    );
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let (supervision, shutdown) = (supervision.clone(), shutdown.clone());
        async move { supervision.serve(listener, shutdown).await }
    });
    let exit = keeper.run(signal_rx).await;
    supervision.finish(LINGER).await;
    shutdown.cancel();
    Ok(exit.code())
}

/// Every signal of [`FORWARDED`] the supervisor gets, as its number.
fn forward_signals() -> std::io::Result<mpsc::UnboundedReceiver<i32>> {
    let (signal_tx, signal_rx) = mpsc::unbounded_channel();
    for number in FORWARDED {
        let mut stream = signal(SignalKind::from_raw(number))?;
        let signal_tx = signal_tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if signal_tx.send(number).is_err() {
                    return;
                }
            }
        });
    }
    Ok(signal_rx)
}
