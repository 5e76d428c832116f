//! A medicine worker, and the checks run inside its pod.
//!
//!   medicine                    work: turn orders into deliveries (the default)
//!   medicine lag                the group's committed offsets and lag, per partition
//!   medicine flowing --min N    exit 0 once tabs.deliveries holds N messages
//!
//!   KAFKA_BOOTSTRAP   kafka-0.kafka.pubsub:9092
//!   POD_NAME          names the worker in its deliveries (the downward API sets it)
//!   WORK_MS           20: how long one order takes

mod context;
mod flowing;
mod lag;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pubsub_common::{config, logging};

/// The consumer group the workers share: each order goes to one of them.
pub const GROUP: &str = "medicine";

#[derive(Parser)]
#[command(about = "Turns the orders on tabs.orders into deliveries on tabs.deliveries")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Work as a member of group `medicine` (what the pod runs).
    Worker,
    /// Print group `medicine`'s committed offset, end offset and lag for each
    /// partition of tabs.orders.
    Lag,
    /// Succeed when tabs.deliveries holds at least --min messages (a readiness check).
    Flowing {
        #[arg(long)]
        min: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let bootstrap = config::bootstrap();
    match cli.command.unwrap_or(Command::Worker) {
        Command::Worker => {
            logging::init();
            let settings = worker::Settings {
                bootstrap,
                worker: config::pod_name(),
                work: config::millis("WORK_MS", 20)?,
            };
            worker::run(settings).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lag => {
            let rows = tokio::task::spawn_blocking(move || lag::query(&bootstrap)).await??;
            print!("{}", lag::table(&rows));
            Ok(ExitCode::SUCCESS)
        }
        Command::Flowing { min } => {
            let count =
                tokio::task::spawn_blocking(move || flowing::deliveries(&bootstrap)).await??;
            match flowing::verdict(count, min) {
                Ok(line) => {
                    println!("{line}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(line) => {
                    println!("{line}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
