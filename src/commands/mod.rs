//! The commands, each an edge where typed errors become a report for a person and an
//! exit code: 2 for bad input (a config error, an unknown name), 1 for a failure.

pub mod completions;
pub mod connect;
pub mod doctor;
pub mod down;
pub mod init;
pub mod intercept;
pub mod logs;
pub mod output;
pub mod plan;
pub mod policy;
mod profile;
mod project;
mod remove;
pub mod run;
pub mod scale;
pub mod schema;
pub mod status;
pub mod trigger;
pub mod up;
pub mod workshop;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// A command's failure, with the exit code it means.
#[derive(Debug)]
pub enum Failure {
    /// The input was wrong: fix it and run again.
    BadInput(anyhow::Error),
    /// Something failed along the way.
    Failed(anyhow::Error),
    /// A program tether ran for the user exited with this code (`tether run`): it has
    /// said what it had to, and tether passes the code on without a report.
    Exit(u8),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::BadInput(_) => ExitCode::from(2),
            Failure::Failed(_) => ExitCode::from(1),
            Failure::Exit(code) => ExitCode::from(*code),
        }
    }

    /// The report for a person; `None` when the exit code says it all.
    pub fn error(&self) -> Option<&anyhow::Error> {
        match self {
            Failure::BadInput(e) | Failure::Failed(e) => Some(e),
            Failure::Exit(_) => None,
        }
    }
}

/// A module's error that knows whether the user's input was wrong.
pub trait Classified: Into<anyhow::Error> {
    fn is_bad_input(&self) -> bool;
}

impl Classified for crate::cluster::ClusterError {
    fn is_bad_input(&self) -> bool {
        self.is_bad_input()
    }
}

impl Classified for crate::deploy::scale::ScaleError {
    fn is_bad_input(&self) -> bool {
        self.is_bad_input()
    }
}

impl Failure {
    /// The failure a classified error means: bad input (exit 2) or a failure (exit 1).
    pub fn classify<E: Classified>(e: E) -> Failure {
        if e.is_bad_input() {
            Failure::BadInput(e.into())
        } else {
            Failure::Failed(e.into())
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Failed(e.into())
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Down(args) => down::run(args).await,
        Command::Plan(args) => plan::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Trigger(args) => trigger::run(args).await,
        Command::Scale(args) => scale::run(args).await,
        Command::Intercept(args) => intercept::intercept(args).await,
        Command::Leave(args) => intercept::leave(args).await,
        Command::List(args) => intercept::list(args).await,
        Command::Uninstall(args) => intercept::uninstall(args).await,
        Command::Connect(args) => connect::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Workshop(args) => workshop::run(args).await,
        Command::Init(args) => init::run(args).await,
        Command::Policy(command) => policy::run(command).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Completions { shell } => completions::run(shell),
        Command::Schema => schema::run(),
    }
}
