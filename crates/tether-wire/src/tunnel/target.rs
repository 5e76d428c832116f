//! What a laptop may open on a connect agent, and what the agent answers first on each
//! stream, so the laptop knows whether a dial worked before it tells its own client (a
//! SOCKS reply, a TCP reset in `tether run`).
//!
//! | Open target          | the agent                                                   |
//! |----------------------|-------------------------------------------------------------|
//! | `tcp:HOST:PORT`      | dials HOST:PORT from inside the cluster; answers one [`Reply`] line, then the connection's bytes |
//! | `dns:NAMESPACE:NAME` | looks NAME up as a pod in NAMESPACE would; answers one [`Answer`] line and ends the stream |
//!
//! HOST may be a name, an IPv4 address or a bracketed IPv6 address (`[fd00::1]`). The
//! lines are JSON, so new fields can be added without a protocol version bump.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A stream a laptop opens on a connect agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp { host: String, port: u16 },
    Lookup { namespace: String, name: String },
}

impl Target {
    /// The Open frame's payload.
    pub fn to_wire(&self) -> String {
        match self {
            Target::Tcp { host, port } if host.contains(':') => format!("tcp:[{host}]:{port}"),
            Target::Tcp { host, port } => format!("tcp:{host}:{port}"),
            Target::Lookup { namespace, name } => format!("dns:{namespace}:{name}"),
        }
    }

    /// Reads an Open frame's payload; `None` for anything else (the stream is reset).
    pub fn parse(wire: &str) -> Option<Target> {
        if let Some(rest) = wire.strip_prefix("tcp:") {
            let (host, port) = rest.rsplit_once(':')?;
            let host = match host.strip_prefix('[') {
                Some(v6) => v6.strip_suffix(']')?,
                None => host,
            };
            if host.is_empty() {
                return None;
            }
            return Some(Target::Tcp {
                host: host.to_owned(),
                port: port.parse().ok()?,
            });
        }
        let rest = wire.strip_prefix("dns:")?;
        let (namespace, name) = rest.split_once(':')?;
        (!name.is_empty()).then(|| Target::Lookup {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Why a dial inside the cluster failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The address answered with a refusal (nothing listens; a Service with no ready
    /// endpoints).
    Refused,
    /// No such name in the cluster.
    NotFound,
    /// No answer in time, or no route.
    Unreachable,
}

/// The agent's first line on a `tcp:` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// `None`: connected, the connection's bytes follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// What was dialled (the address a name resolved to), or why it failed, for people.
    #[serde(default)]
    pub detail: String,
}

/// The agent's answer on a `dns:` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Answer {
    /// The name the cluster knows it by (`orders-svc.api.svc.cluster.local.`); empty when
    /// it is not a cluster name.
    #[serde(default)]
    pub fqdn: String,
    #[serde(default)]
    pub addrs: Vec<IpAddr>,
    /// The cluster's DNS domain (`cluster.local`), so the laptop can tell a missing cluster
    /// name from a name of the outside world.
    #[serde(default)]
    pub domain: String,
    /// The cluster's DNS could not be asked (not "no such name": that is an empty fqdn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Encodes one line: JSON and a newline.
pub fn line<T: Serialize>(value: &T) -> Vec<u8> {
    // These types hold strings, numbers and addresses only: serialising cannot fail.
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_survive_the_wire() {
        for t in [
            Target::Tcp {
                host: "orders-svc.api".into(),
                port: 80,
            },
            Target::Tcp {
                host: "10.96.0.10".into(),
                port: 53,
            },
            Target::Tcp {
                host: "fd00::1".into(),
                port: 8080,
            },
            Target::Lookup {
                namespace: "api".into(),
                name: "pg-0.pg.data".into(),
            },
        ] {
            assert_eq!(Target::parse(&t.to_wire()), Some(t.clone()), "{t:?}");
        }
        assert_eq!(
            Target::Tcp {
                host: "fd00::1".into(),
                port: 1
            }
            .to_wire(),
            "tcp:[fd00::1]:1"
        );
    }

    #[test]
    fn malformed_targets_are_none() {
        for wire in [
            "",
            "tcp:",
            "tcp:host",
            "tcp::80",
            "tcp:h:99999",
            "dns:api:",
            "udp:h:1",
            "tcp:[::1:80",
        ] {
            assert_eq!(Target::parse(wire), None, "{wire}");
        }
    }

    #[test]
    fn replies_are_one_json_line() {
        let r = Reply {
            failure: Some(Failure::Refused),
            detail: "10.96.3.4:80: connection refused".into(),
        };
        let bytes = line(&r);
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(serde_json::from_slice::<Reply>(&bytes).ok(), Some(r));
        assert_eq!(
            serde_json::from_str::<Reply>(r#"{"detail":"x","later":1}"#).ok(),
            Some(Reply {
                failure: None,
                detail: "x".into()
            }),
            "unknown fields are ignored"
        );
    }
}
