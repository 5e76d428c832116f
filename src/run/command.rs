//! What the caller asks `tether run` to start, and the knobs of the laptop side it may
//! change (tests point the DNS forwarder at a fake upstream).

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use super::error::RunError;

/// The program to run in the namespace, as the CLI parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommand {
    /// Looked up in `PATH` (CMD's `PATH`: tether's, or the one in `env`) like a shell does.
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Set on top of tether's own environment (a pod's variables for `--env-from`).
    pub env: Vec<(OsString, OsString)>,
    /// Where CMD starts; tether's own working directory when `None`.
    pub cwd: Option<PathBuf>,
    /// The cluster namespace relative names resolve in, for messages only: the
    /// [`ClusterNet`](crate::connect::ClusterNet) applies it.
    pub namespace: String,
}

impl RunCommand {
    /// `argv[0]` is the program, the rest its arguments; an empty `argv` is bad input.
    pub fn from_argv(
        argv: impl IntoIterator<Item = impl Into<OsString>>,
        namespace: impl Into<String>,
    ) -> Result<Self, RunError> {
        let mut argv = argv.into_iter().map(Into::into);
        let program = argv
            .next()
            .filter(|p| !p.is_empty())
            .ok_or(RunError::NoCommand)?;
        Ok(Self {
            program,
            args: argv.collect(),
            env: Vec::new(),
            cwd: None,
            namespace: namespace.into(),
        })
    }

    /// The program as messages show it.
    pub fn display_program(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

/// The laptop side of a run that callers other than the CLI may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The laptop's resolver configuration: its nameservers receive the names the cluster
    /// does not know, its search list and options are kept for CMD.
    pub resolv_conf: PathBuf,
    /// Forward names the cluster does not know here instead of `resolv_conf`'s nameservers.
    pub upstream_dns: Option<Vec<SocketAddr>>,
    pub user_namespace: UserNamespace,
    /// Ports of the laptop's loopback whose connections go on to the same port in CMD's
    /// namespace, so a server CMD runs is reached from the laptop (by `tether intercept`,
    /// a browser). CMD must listen on all addresses (`0.0.0.0`), not only its loopback.
    pub publish: Vec<u16>,
}

/// Whether CMD's namespaces hang off a user namespace of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserNamespace {
    /// Only when tether is not root: root makes network and mount namespaces directly and
    /// CMD keeps root's powers over every file (in a user namespace, files of users it
    /// does not map would be out of its reach).
    #[default]
    UnlessRoot,
    /// Always, as an unprivileged caller would (root then runs CMD the rootless way).
    Always,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            resolv_conf: Path::new("/etc/resolv.conf").to_path_buf(),
            upstream_dns: None,
            user_namespace: UserNamespace::default(),
            publish: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_argv_is_bad_input() {
        let err = RunCommand::from_argv(Vec::<String>::new(), "default").unwrap_err();
        assert!(matches!(err, RunError::NoCommand));
        assert_eq!(err.exit_code(), 2);
        assert!(RunCommand::from_argv([""], "default").is_err());
    }

    #[test]
    fn argv_splits_into_program_and_args() {
        let cmd = RunCommand::from_argv(["psql", "-h", "postgres.data"], "api").unwrap();
        assert_eq!(cmd.program, "psql");
        assert_eq!(cmd.args, vec!["-h", "postgres.data"]);
        assert_eq!(cmd.namespace, "api");
    }
}
