use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TETHER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = tether::cli::Cli::parse();
    match tether::commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(e) = failure.error() {
                eprintln!("error: {e:#}");
            }
            failure.exit_code()
        }
    }
}
