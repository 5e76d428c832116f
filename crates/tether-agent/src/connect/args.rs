//! `tether-agent connect ARGS`: the control port, the cluster domain (read from the pod's
//! resolv.conf when not given), the dial timeout. The token comes from the environment
//! only, as for the traffic agent.

use std::time::Duration;

use clap::Parser;

use super::ConnectConfig;
use crate::{TOKEN_ENV, args::parse_duration, tunnel::Settings};

#[derive(Debug, Parser)]
#[command(name = "tether-agent connect", no_binary_name = true)]
pub struct ConnectArgs {
    /// The control port for laptops; bound on 127.0.0.1 only.
    #[arg(long, default_value_t = 9901)]
    pub control: u16,
    /// The cluster's DNS domain; by default the last `search` entry of /etc/resolv.conf.
    #[arg(long)]
    pub domain: Option<String>,
    /// How long a dial inside the cluster may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub dial_timeout: Duration,
}

impl ConnectArgs {
    /// The config, with the token from `env` and the pod's resolv.conf text.
    pub fn config(&self, env: impl Fn(&str) -> Option<String>, resolv: &str) -> ConnectConfig {
        ConnectConfig {
            token: env(TOKEN_ENV).filter(|t| !t.is_empty()),
            domain: self
                .domain
                .clone()
                .or_else(|| domain_of(resolv))
                .unwrap_or_else(|| "cluster.local".into()),
            dial_timeout: self.dial_timeout,
            session: Settings::default(),
        }
    }
}

/// The cluster domain a pod's resolv.conf implies: its search list ends in it
/// (`tether.svc.cluster.local svc.cluster.local cluster.local`).
fn domain_of(resolv: &str) -> Option<String> {
    let search = resolv
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("search"))?;
    search
        .split_whitespace()
        .find_map(|d| d.strip_prefix("svc."))
        .map(|d| d.trim_end_matches('.').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_comes_from_the_search_list() {
        let pod = "search tether.svc.cluster.local svc.cluster.local cluster.local\n\
                   nameserver 10.96.0.10\noptions ndots:5\n";
        assert_eq!(domain_of(pod).as_deref(), Some("cluster.local"));
        assert_eq!(
            domain_of("search svc.corp.example.\n").as_deref(),
            Some("corp.example")
        );
        assert_eq!(domain_of("nameserver 1.1.1.1\n"), None);
        let args = ConnectArgs::try_parse_from(["--domain", "k8s.test"]).unwrap();
        assert_eq!(args.config(|_| None, pod).domain, "k8s.test");
        assert_eq!(
            args.config(|_| Some("t".into()), "").token.as_deref(),
            Some("t")
        );
    }
}
