//! The supervisor's command line (`tether-agent supervise ARGS -- ARGV`, as the mutated
//! pod spec gives it) and the environment it reads, validated into a [`SuperviseConfig`].
//!
//! The attach token comes only from the environment ([`TOKEN_ENV`], filled from a Secret),
//! and is taken out of the app's environment: the app has no use for it, and anything
//! that can read the app's environment (a crash report, a debug page) would leak it.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::Parser;

use crate::{
    AgentConfig,
    args::parse_duration,
    tunnel::Settings,
    wire::{CONTROL_PORT, PORTS_TIMEOUT, RUN_TIMEOUT, STATE_DIR, TOKEN_ENV},
};

#[derive(Debug, Parser)]
#[command(name = "tether-agent supervise", no_binary_name = true)]
pub struct SuperviseArgs {
    /// The control port for laptops; bound on 127.0.0.1 only.
    #[arg(long, default_value_t = CONTROL_PORT)]
    pub control: u16,
    /// The state directory: on the emptyDir, so synced files outlive container restarts.
    #[arg(long, default_value = STATE_DIR)]
    pub state: PathBuf,
    /// How long the app has to stop after SIGTERM on a restart before it is killed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// The app's command line, as Kubernetes would run it (entrypoint and args).
    #[arg(last = true, required = true, num_args = 1..)]
    pub argv: Vec<String>,
}

/// What the supervisor runs with.
#[derive(Debug, Clone)]
pub struct SuperviseConfig {
    pub state: PathBuf,
    pub grace: Duration,
    /// The token a laptop must present; `None` refuses every laptop.
    pub token: Option<String>,
    /// The app's argv; argv\[0\] as given (absolute, or a name found through PATH).
    pub argv: Vec<String>,
    /// The app's environment, and the run steps': the supervisor's, less the token.
    pub env: Vec<(OsString, OsString)>,
    /// How long a run step may take.
    pub run_timeout: Duration,
    /// How long an update waits for its ports.
    pub ports_timeout: Duration,
    /// Heartbeat and bounds of every laptop's session.
    pub session: Settings,
}

impl SuperviseArgs {
    /// The settings, with the token taken out of `env` (the supervisor's environment).
    pub fn config(&self, env: impl IntoIterator<Item = (OsString, OsString)>) -> SuperviseConfig {
        SuperviseConfig::new(self.argv.clone(), self.state.clone(), env, self.grace)
    }
}

impl SuperviseConfig {
    /// Runs `argv` with state in `state`; the token is taken out of `env`.
    pub fn new(
        argv: Vec<String>,
        state: PathBuf,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        grace: Duration,
    ) -> SuperviseConfig {
        let (tokens, env): (Vec<_>, Vec<_>) = env.into_iter().partition(|(k, _)| k == TOKEN_ENV);
        let token = tokens
            .into_iter()
            .find_map(|(_, v)| v.into_string().ok())
            .filter(|t| !t.is_empty());
        SuperviseConfig {
            state,
            grace,
            token,
            argv,
            env,
            run_timeout: RUN_TIMEOUT,
            ports_timeout: PORTS_TIMEOUT,
            session: Settings {
                limits: AgentConfig::LAPTOP_LIMITS,
                ..Settings::default()
            },
        }
    }

    /// The app's environment variable `name`.
    pub fn env_var(&self, name: &str) -> Option<&OsString> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn args_parse_as_the_pod_spec_gives_them() {
        let a = SuperviseArgs::try_parse_from([
            "--control",
            "9902",
            "--state",
            "/.tether/state",
            "--",
            "/users",
            "--port",
            "8080",
        ])
        .unwrap();
        assert_eq!(a.control, 9902);
        assert_eq!(a.grace, Duration::from_secs(10));
        assert_eq!(a.argv, ["/users", "--port", "8080"]);
        let a =
            SuperviseArgs::try_parse_from(["--grace", "2s", "--", "node", "--state", "x"]).unwrap();
        assert_eq!(
            a.argv,
            ["node", "--state", "x"],
            "the app's flags stay the app's"
        );
        assert_eq!(a.state, PathBuf::from(STATE_DIR));
        assert!(
            SuperviseArgs::try_parse_from(["--control", "1"]).is_err(),
            "no argv"
        );
        assert!(
            SuperviseArgs::try_parse_from(["/users"]).is_err(),
            "argv after --"
        );
    }

    #[test]
    fn the_token_leaves_the_apps_environment() {
        let a = SuperviseArgs::try_parse_from(["--", "/users"]).unwrap();
        let c = a.config(os(&[
            ("PATH", "/bin"),
            (TOKEN_ENV, "s3cret"),
            ("HOME", "/"),
        ]));
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert_eq!(c.env, os(&[("PATH", "/bin"), ("HOME", "/")]));
        assert_eq!(
            c.env_var("PATH").map(|p| p.as_os_str()),
            Some("/bin".as_ref())
        );
        let c = a.config(os(&[(TOKEN_ENV, "")]));
        assert_eq!(c.token, None, "empty is unset");
        assert!(c.env.is_empty());
    }
}
