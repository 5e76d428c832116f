//! What the peers say about themselves in their Hellos, and what an agent reports about the
//! laptops attached to it: plain serde types carried as JSON inside frames.

use serde::{Deserialize, Serialize};

/// Which end of the tunnel a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Laptop,
    Agent,
}

/// Which HTTP requests a laptop wants; empty means every connection (all traffic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Filter {
    /// Every (name, value) must be present: names compare case-insensitively, values exactly.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl Filter {
    pub fn is_all(&self) -> bool {
        self.headers.is_empty()
    }

    /// Parses `NAME=VALUE` (the CLI's `--header`).
    pub fn parse_header(text: &str) -> Option<(String, String)> {
        let (name, value) = text.split_once('=')?;
        let name = name.trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        valid.then(|| (name.to_ascii_lowercase(), value.to_owned()))
    }

    /// The filter in a canonical form (names lowercased, pairs sorted, duplicates gone), so
    /// two laptops asking for the same requests in another order are seen as the same.
    pub fn canonical(&self) -> Filter {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        headers.sort();
        headers.dedup();
        Filter { headers }
    }

    /// `x-dev=alice, x-team=a`, for messages.
    pub fn describe(&self) -> String {
        let pairs: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        pairs.join(", ")
    }
}

/// What a peer says about itself in its Hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HelloMeta {
    #[serde(default)]
    pub role: Role,
    /// Who is speaking, for logs: the laptop's user@host, the agent's pod.
    #[serde(default)]
    pub name: String,
    /// The laptop's routing wish; ignored in an agent's Hello.
    #[serde(default)]
    pub filter: Filter,
    /// The laptop's proof that it may attach: the intercept's secret, which only someone
    /// allowed to read the intercept's Secret in the cluster has. Empty in an agent's Hello.
    #[serde(default)]
    pub token: String,
}

/// The target of an Open that asks the agent who is attached (to any of its laptops'
/// sessions): the agent answers with a JSON array of [`LaptopInfo`] and ends the stream.
pub const LAPTOPS_TARGET: &str = "tether:laptops";

/// The target of an Open an agent sends a laptop for a caller's connection or request:
/// the agent port it arrived on (`port:9902`), so a laptop intercepting several Service
/// ports hands each stream to the local port taking that one.
pub fn traffic_target(agent_port: u16) -> String {
    format!("port:{agent_port}")
}

/// The agent port a traffic stream names; `None` for an empty target (an agent serving
/// one port may send that) or anything else.
pub fn traffic_port(target: &str) -> Option<u16> {
    target.strip_prefix("port:")?.parse().ok()
}

/// One laptop attached to an agent, as [`LAPTOPS_TARGET`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LaptopInfo {
    /// The laptop's user@host, from its Hello.
    #[serde(default)]
    pub name: String,
    /// What it routes: every connection, or requests carrying these headers.
    #[serde(default)]
    pub filter: Filter,
    /// Milliseconds since it attached.
    #[serde(default)]
    pub attached_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flags_parse_into_filters() {
        assert_eq!(
            Filter::parse_header("X-Dev=alice"),
            Some(("x-dev".into(), "alice".into()))
        );
        assert_eq!(
            Filter::parse_header("x=a=b"),
            Some(("x".into(), "a=b".into()))
        );
        assert_eq!(Filter::parse_header("novalue"), None);
        assert_eq!(Filter::parse_header("bad name=v"), None);
        assert_eq!(Filter::parse_header("=v"), None);
    }

    #[test]
    fn traffic_targets_name_the_agent_port() {
        assert_eq!(traffic_port(&traffic_target(9902)), Some(9902));
        for other in [
            "",
            "port:",
            "port:x",
            "port:70000",
            "tcp:h:1",
            LAPTOPS_TARGET,
        ] {
            assert_eq!(traffic_port(other), None, "{other}");
        }
    }

    #[test]
    fn filters_in_another_order_or_case_are_the_same() {
        let a = Filter {
            headers: vec![
                ("X-Dev".into(), "alice".into()),
                ("x-team".into(), "a".into()),
            ],
        };
        let b = Filter {
            headers: vec![
                ("x-team".into(), "a".into()),
                ("x-dev".into(), "alice".into()),
            ],
        };
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), Filter::default().canonical());
        assert_eq!(b.canonical().describe(), "x-dev=alice, x-team=a");
    }
}
