//! The command line, as clap reads it. Parsing only: each command lives in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Up(UpArgs),
    /// Remove exactly what `up` created for this project in this context.
    Down(DownArgs),
    /// Show what `up` would change in the cluster (objects created, changed field by
    /// field, unchanged, deleted), changing nothing.
    Plan(PlanArgs),
    /// Show the resources of the running `up`.
    Status(StatusArgs),
    /// Show the logs of the running `up`, of all resources or one.
    Logs(LogsArgs),
    /// Rebuild and redeploy a resource of the running `up` now.
    Trigger(TriggerArgs),
    /// Set the replicas of a resource's Deployment or StatefulSet now; `up` keeps the count
    /// until tether.toml changes.
    Scale(ScaleArgs),
    /// Route a Service's traffic to a process on this machine.
    Intercept(InterceptArgs),
    /// End an intercept: undo tether's changes to the Service and workload, keep others'.
    Leave(LeaveArgs),
    /// List services that can be intercepted, and active intercepts.
    List(ListArgs),
    /// Remove every traffic agent and undo tether's changes, also after a crash.
    Uninstall(UninstallArgs),
    /// Reach cluster services by their cluster names from this machine: a SOCKS5/HTTP
    /// proxy and a DNS server for cluster names on loopback, until Ctrl-C or `--quit`.
    Connect(ConnectArgs),
    /// Run a command that reaches the cluster's Services and pods by their cluster names,
    /// whatever it is (no proxy support needed), without root.
    Run(RunArgs),
    /// The guided workshop: its steps, each checked live against the cluster and this machine.
    Workshop(WorkshopArgs),
    /// Write a first tether.toml for a folder with a Dockerfile and Kubernetes manifests.
    Init(InitArgs),
    /// The cluster's rules of who may deploy what into which profile (an admin's).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check that this machine and kube context are ready for tether: cluster, RBAC,
    /// Docker API, registry (from here and from the cluster), user namespaces.
    Doctor(DoctorArgs),
    /// Print the shell completion script, e.g. `tether completions bash > /etc/bash_completion.d/tether`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of tether.toml (committed as schema/tether.schema.json).
    #[command(hide = true)]
    Schema,
}

#[derive(Debug, Args, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub target: Target,
    /// Exit 0 once every resource is ready, non-zero with the reason on failure or timeout.
    #[arg(long)]
    pub ci: bool,
    /// Plain progress lines instead of the interactive view.
    #[arg(long)]
    pub no_tui: bool,
    /// With --ci: seconds a resource may take to become ready.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Build and redeploy on every change, even where tether.toml has live-update rules
    /// (which otherwise sync changed files into the running containers).
    #[arg(long)]
    pub no_live_update: bool,
    /// Run the project as this `[profiles.NAME]` of tether.toml (default: `default_profile`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Deploy to a `production = true` profile without asking (needed without a terminal).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args, Clone)]
pub struct DownArgs {
    #[command(flatten)]
    pub target: Target,
    /// Also delete namespaces that tether created (they may hold other work).
    #[arg(long)]
    pub delete_namespaces: bool,
    /// Remove what `up --profile NAME` made, the profile's namespace included.
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: Target,
    /// Plan the run of this `[profiles.NAME]` of tether.toml (default: `default_profile`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Output format (`table` is text).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Output format (`table` is text).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args, Clone)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: Target,
    pub resource: Option<String>,
    /// Only this pod's lines: its name, or the tail each line is tagged with.
    #[arg(long)]
    pub pod: Option<String>,
    /// Keep following new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// `json`, `yaml`: each line as one record (time, resource, pod, container, text).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args, Clone)]
pub struct TriggerArgs {
    #[command(flatten)]
    pub target: Target,
    pub resource: String,
}

#[derive(Debug, Args, Clone)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub target: Target,
    pub resource: String,
    /// The replica count, or `+N` / `-N` from the current one.
    #[arg(allow_hyphen_values = true, value_parser = parse_count)]
    pub replicas: crate::deploy::scale::Count,
    /// The workload to scale (`NAME` or `KIND/NAME`), when the resource has several.
    #[arg(long)]
    pub workload: Option<String>,
}

/// `3` sets the count; `+1` and `-1` change it.
fn parse_count(s: &str) -> Result<crate::deploy::scale::Count, String> {
    use crate::deploy::scale::Count;
    let n = |t: &str| {
        t.parse::<i32>()
            .map_err(|_| format!("`{s}` is not a replica count: expected N, +N or -N"))
    };
    match s.as_bytes().first() {
        Some(b'+') => n(&s[1..]).map(Count::By),
        Some(b'-') => n(&s[1..]).map(|d| Count::By(-d)),
        _ => n(s).map(Count::To),
    }
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Lines for a person.
    #[default]
    #[value(alias = "table")]
    Text,
    /// JSON for scripts: one object (or array) per result.
    Json,
    /// YAML for scripts: the same document as JSON.
    Yaml,
}

#[derive(Debug, Args, Clone)]
pub struct InterceptArgs {
    pub service: String,
    /// LOCAL[:REMOTE]: the port the local process listens on, and the Service port (its
    /// number or name) to take; REMOTE is needed only when the Service has several ports.
    /// Repeat it to take several ports of the Service in one intercept.
    #[arg(
        short = 'p',
        long = "port",
        value_name = "LOCAL[:REMOTE]",
        required = true
    )]
    pub port: Vec<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Only HTTP requests carrying this header (NAME=VALUE) are routed here.
    #[arg(long)]
    pub header: Vec<String>,
    /// Write the intercepted container's environment to this file (mode 0600).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    #[arg(long)]
    pub context: Option<String>,
    /// `json`, `yaml`: progress on stderr, the ready line on stdout as one document.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
    /// Intercept as a resource of this `[profiles.NAME]` of the nearest tether.toml: the
    /// cluster's policy must allow it (and a `production` profile asks first).
    #[arg(long)]
    pub profile: Option<String>,
    /// With a `production` profile: go ahead without asking.
    #[arg(long)]
    pub yes: bool,
    /// The local process to start (after `--`), as `tether run -p LOCAL` starts it: it
    /// reaches the cluster by its names and gets the intercepted container's environment;
    /// the intercept ends when it exits.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args, Clone)]
pub struct LeaveArgs {
    pub service: String,
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[arg(long)]
    pub context: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args, Clone)]
pub struct ListArgs {
    #[arg(short, long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace, not only the current one.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(long)]
    pub context: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// The namespace relative names resolve in (`orders-svc` is `orders-svc.NS`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[arg(long)]
    pub context: Option<String>,
    /// The loopback port of the SOCKS5 and HTTP proxy (0: any free port).
    #[arg(long, default_value_t = 1080)]
    pub proxy_port: u16,
    /// The loopback port of the DNS server for cluster names (0: any free port).
    #[arg(long, default_value_t = 1053)]
    pub dns_port: u16,
    /// Show the running session (namespace, agent, connections, bytes) and exit.
    #[arg(long, conflicts_with = "quit")]
    pub status: bool,
    /// End the running session and exit.
    #[arg(long)]
    pub quit: bool,
    /// `json`, `yaml`: the ready line and `--status` as one document each on stdout.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
    /// Connect for this `[profiles.NAME]` of the nearest tether.toml: the cluster's policy
    /// must allow the user something in it (and a `production` profile asks first).
    #[arg(long)]
    pub profile: Option<String>,
    /// With a `production` profile: go ahead without asking.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and store it in the cluster (ConfigMap tether/tether-policy);
    /// a file with an error changes nothing.
    Apply(PolicyApplyArgs),
    /// Print the cluster's policy.
    Show(PolicyShowArgs),
}

#[derive(Debug, Args, Clone)]
pub struct PolicyApplyArgs {
    /// The policy file (TOML, `[[rule]]` tables).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct PolicyShowArgs {
    #[arg(long)]
    pub context: Option<String>,
    /// `json`, `yaml`: the rules as one document.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The namespace relative names resolve in (`orders-svc` is `orders-svc.NS`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[arg(long)]
    pub context: Option<String>,
    /// Give the command the environment of this Service's container, as the kubelet
    /// resolves it (ConfigMaps, Secrets, `$(VAR)`), the same as `intercept --env-file`.
    #[arg(long, value_name = "SERVICE")]
    pub env_from: Option<String>,
    /// Forward the laptop's 127.0.0.1:PORT to PORT in the command's namespace, so what it
    /// serves is reached from the laptop (by `tether intercept -p PORT`); repeatable. The
    /// command must listen on 0.0.0.0.
    #[arg(short = 'p', long, value_name = "PORT")]
    pub publish: Vec<u16>,
    /// The command and its arguments, after `--`.
    #[arg(
        trailing_var_arg = true,
        required = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args, Clone)]
pub struct WorkshopArgs {
    /// The folder holding workshop.toml (else its `workspace-demo/`).
    #[arg(short = 'C', long = "dir", default_value = ".")]
    pub dir: PathBuf,
    /// Run the workshop's reset commands and forget its progress first.
    #[arg(long)]
    pub reset: bool,
    /// Show step N (1-based) and check it, wherever the progress is.
    #[arg(long, value_name = "N")]
    pub step: Option<usize>,
    /// `json`, `yaml`: every check's state for scripts; exit 0 when all pass, 1 otherwise.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
    /// Plain lines instead of the interactive screen.
    #[arg(long)]
    pub no_tui: bool,
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct InitArgs {
    /// The folder to write tether.toml in (its Dockerfiles and manifests are read).
    #[arg(short = 'C', long = "dir", default_value = ".")]
    pub dir: PathBuf,
    /// Write over an existing tether.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args, Clone)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: Target,
    /// `json`, `yaml`: every check in one document on stdout.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args, Clone)]
pub struct UninstallArgs {
    #[arg(short, long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// In every namespace, not only the current one (`--all` is the older spelling).
    #[arg(short = 'A', long, alias = "all")]
    pub all_namespaces: bool,
    /// Only the connect agent (`-A` removes it too, with every traffic agent).
    #[arg(long, conflicts_with_all = ["namespace", "all_namespaces"])]
    pub connect: bool,
    #[arg(long)]
    pub context: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn help_lists_every_command_a_developer_runs() {
        let help = Cli::command().render_help().to_string();
        let commands = [
            "up",
            "down",
            "intercept",
            "leave",
            "list",
            "uninstall",
            "connect",
            "run",
            "workshop",
        ];
        for built in commands {
            assert!(
                help.contains(&format!("  {built}")),
                "{built} is listed: {help}"
            );
        }
    }
}
