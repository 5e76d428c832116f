//! The agent's command line (`tether-agent ARGS`, as the sidecar's args give it) and the
//! environment it reads, validated into an [`AgentConfig`].
//!
//! The attach token comes only from the environment ([`TOKEN_ENV`], which the installer
//! fills from a Kubernetes Secret with `secretKeyRef`): an argument or an annotation would
//! be readable by anyone who may read the pod.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

use super::server::AgentConfig;
use crate::tunnel::{Heartbeat, Settings};

/// The environment variable that holds the token laptops must present to attach.
pub const TOKEN_ENV: &str = "TETHER_AGENT_TOKEN";

#[derive(Debug, Parser)]
#[command(name = "tether-agent", version, no_binary_name = true)]
pub struct AgentArgs {
    /// `AGENT:APP`, once per intercepted Service port: the agent listens on AGENT (the
    /// Service's targetPort now leads there) and passes what no laptop takes to the app
    /// container's APP over the pod's loopback.
    #[arg(long = "port", required = true, value_parser = parse_port_map)]
    pub ports: Vec<PortMap>,
    /// The control port for laptops; bound on 127.0.0.1 only.
    #[arg(long, default_value_t = 9901)]
    pub control: u16,
    /// What the agent serves, as refusals name it ("payments-svc is intercepted by …").
    #[arg(long, default_value = "this workload")]
    pub service: String,
    /// How often a quiet tunnel pings.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// The shortest silence after which a laptop counts as gone: on a normal link traffic
    /// goes back to the app within this plus one interval.
    #[arg(long, default_value = "800ms", value_parser = parse_duration)]
    pub heartbeat_floor: Duration,
    /// The longest such silence, however slow the measured round trips.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_limit: Duration,
}

/// One intercepted port: where the agent listens, and the app's port behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMap {
    pub listen: u16,
    pub app: u16,
}

impl PortMap {
    /// The app container's side of it, over the pod's loopback.
    pub fn app_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.app))
    }
}

/// `9902:8080`.
fn parse_port_map(text: &str) -> Result<PortMap, String> {
    let bad = || format!("`{text}` is not AGENT:APP, two ports such as 9902:8080");
    let (listen, app) = text.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    Ok(PortMap {
        listen: port(listen)?,
        app: port(app)?,
    })
}

impl AgentArgs {
    /// The agent's settings, with the token read from the environment by `env`.
    pub fn config(&self, env: impl Fn(&str) -> Option<String>) -> AgentConfig {
        AgentConfig {
            token: env(TOKEN_ENV).filter(|t| !t.is_empty()),
            service: self.service.clone(),
            session: Settings {
                heartbeat: Heartbeat {
                    interval: self.heartbeat_interval,
                    floor: self.heartbeat_floor,
                    limit: self.heartbeat_limit,
                },
                limits: AgentConfig::LAPTOP_LIMITS,
            },
        }
    }
}

/// `800ms`, `5s` or `1.5s`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration such as 800ms or 5s");
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * scale)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_args_parse_as_the_sidecar_gives_them() {
        let args: Vec<String> = [
            "--port",
            "9900:8080",
            "--port",
            "9902:9090",
            "--control",
            "9901",
        ]
        .map(String::from)
        .to_vec();
        let a = AgentArgs::try_parse_from(&args).unwrap();
        assert_eq!(
            a.ports,
            [
                PortMap {
                    listen: 9900,
                    app: 8080
                },
                PortMap {
                    listen: 9902,
                    app: 9090
                }
            ]
        );
        assert_eq!(a.control, 9901);
        assert!(
            AgentArgs::try_parse_from(["--control", "1"]).is_err(),
            "a port is required"
        );
        for bad in ["9900", "9900:", ":8080", "0:8080", "9900:x", "9900:70000"] {
            assert!(AgentArgs::try_parse_from(["--port", bad]).is_err(), "{bad}");
        }
        let c = a.config(|_| None);
        assert_eq!(c.session.heartbeat, Heartbeat::default());
        assert_eq!(c.token, None);
    }

    #[test]
    fn the_token_comes_from_the_environment_and_the_heartbeat_from_flags() {
        let a = AgentArgs::try_parse_from([
            "--port",
            "2:1",
            "--heartbeat-floor",
            "2s",
            "--heartbeat-limit",
            "1.5s",
            "--service",
            "payments-svc",
        ])
        .unwrap();
        let c = a.config(|k| (k == TOKEN_ENV).then(|| "s3cret".to_owned()));
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert_eq!(c.service, "payments-svc");
        assert_eq!(c.session.heartbeat.floor, Duration::from_secs(2));
        assert_eq!(c.session.heartbeat.limit, Duration::from_millis(1500));
        assert_eq!(
            a.config(|_| Some(String::new())).token,
            None,
            "empty is unset"
        );
        assert!(AgentArgs::try_parse_from(["--port", "2:1", "--heartbeat-floor", "2"]).is_err());
        assert!(AgentArgs::try_parse_from(["--port", "2:1", "--token", "x"]).is_err());
    }
}
