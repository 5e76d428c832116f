//! The command line, as clap reads it. Parsing only: each command lives in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    about = "The developer inner loop on Kubernetes: watch, build, deploy, forward, intercept.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Target {
    /// The folder holding tether.toml.
    #[arg(short = 'C', long = "dir", default_value = ".")]
    pub dir: PathBuf,
    /// The kube context to use instead of the kubeconfig's current one.
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, deploy and watch the project in this folder; rebuild and redeploy on every change.
    Up {
        #[command(flatten)]
        target: Target,
        /// Exit 0 once every resource is ready, non-zero with the reason on failure or timeout.
        #[arg(long)]
        ci: bool,
        /// Plain progress lines instead of the interactive view.
        #[arg(long)]
        no_tui: bool,
        /// With --ci: seconds a resource may take to become ready.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Remove exactly what `up` created for this project in this context.
    Down {
        #[command(flatten)]
        target: Target,
        /// Also delete namespaces that tether created (they may hold other work).
        #[arg(long)]
        delete_namespaces: bool,
    },
    /// Show the resources of the running `up`.
    Status {
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
    /// Show the logs of the running `up`, of all resources or one.
    Logs {
        #[command(flatten)]
        target: Target,
        resource: Option<String>,
        /// Keep following new lines.
        #[arg(short, long)]
        follow: bool,
    },
    /// Rebuild and redeploy a resource of the running `up` now.
    Trigger {
        #[command(flatten)]
        target: Target,
        resource: String,
    },
    /// Route a Service's traffic to a process on this machine.
    Intercept {
        service: String,
        /// The local port the process listens on.
        #[arg(long)]
        port: u16,
        #[arg(short, long)]
        namespace: Option<String>,
        /// Only HTTP requests carrying this header (NAME=VALUE) are routed here.
        #[arg(long)]
        header: Vec<String>,
        /// Write the intercepted container's environment to this file (mode 0600).
        #[arg(long)]
        env_file: Option<PathBuf>,
        #[arg(long)]
        context: Option<String>,
    },
    /// End an intercept and restore the Service and workload exactly.
    Leave {
        service: String,
        #[arg(short, long)]
        namespace: Option<String>,
        #[arg(long)]
        context: Option<String>,
    },
    /// List services that can be intercepted, and active intercepts.
    List {
        #[arg(short, long)]
        namespace: Option<String>,
        #[arg(long)]
        context: Option<String>,
    },
    /// Remove every traffic agent and restore every intercepted spec, also after a crash.
    Uninstall {
        /// In every namespace, not only the current one.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        context: Option<String>,
    },
    /// Reach cluster services by their cluster names from this machine.
    Connect {
        #[arg(long)]
        context: Option<String>,
    },
    /// Run a command with the cluster connection's proxy settings and environment.
    Run {
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// The in-cluster traffic agent (runs inside a pod, not on a laptop).
    Agent {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}
