//! One line per event on stdout, where `kubectl logs` and tether read it.

use std::io::{self, IsTerminal};

use tracing_subscriber::EnvFilter;

/// Logs at `info` (or what `RUST_LOG` says); colours only on a terminal.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stdout)
        .with_ansi(io::stdout().is_terminal())
        .with_target(false)
        .init();
}
