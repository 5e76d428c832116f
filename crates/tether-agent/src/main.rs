//! `tether-agent`: the one binary of tether's in-cluster side. Its first argument picks
//! the role (see [`tether_agent::run`]); what goes wrong is reported once, here.

use std::{error::Error, process::ExitCode};

use tether_agent::AgentError;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TETHER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match tether_agent::run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        // clap prints usage (and `--help`) itself, with its own exit code.
        Err(AgentError::Args(e)) => e.exit(),
        Err(e) => {
            let mut report = format!("error: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                report.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("{report}");
            ExitCode::FAILURE
        }
    }
}
