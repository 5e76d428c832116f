//! Names, as a pod in the laptop's namespace would look them up, asked of the cluster's
//! DNS. Only names inside the cluster's domain are ever asked: `example.com` is tried as
//! `example.com.api.svc.cluster.local.` and so on, never as itself, so a connect session
//! answers cluster names only and never shadows the laptop's own resolver.

use std::net::IpAddr;

use hickory_resolver::{
    ResolveError, TokioResolver, config::ResolverOpts, name_server::TokioConnectionProvider,
};

use crate::tunnel::target::Answer;

/// The fully qualified names to try for `name` asked from `namespace`, in the order a
/// pod's search list gives them (`NS.svc.DOMAIN`, `svc.DOMAIN`, `DOMAIN`). A name already
/// in the domain is tried as itself alone; a malformed one gives none.
pub fn candidates(name: &str, namespace: &str, domain: &str) -> Vec<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !valid(&name) || !valid(domain) {
        return Vec::new();
    }
    if name == domain || name.ends_with(&format!(".{domain}")) {
        return vec![format!("{name}.")];
    }
    let mut out = Vec::with_capacity(3);
    if valid(namespace) {
        out.push(format!("{name}.{namespace}.svc.{domain}."));
    }
    out.push(format!("{name}.svc.{domain}."));
    out.push(format!("{name}.{domain}."));
    out
}

/// The cluster's DNS, as the pod's resolv.conf names it.
#[derive(Clone)]
pub struct ClusterDns {
    resolver: TokioResolver,
    domain: String,
}

impl ClusterDns {
    /// The resolver of the pod's /etc/resolv.conf; names are always asked fully
    /// qualified, so its search list and ndots play no part.
    pub fn from_system(domain: &str) -> Result<ClusterDns, ResolveError> {
        let mut builder = TokioResolver::builder(TokioConnectionProvider::default())?;
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.ndots = 0;
        // An answer the laptop caches on its side too: keep the agent's short.
        opts.positive_max_ttl = Some(std::time::Duration::from_secs(5));
        opts.negative_max_ttl = Some(std::time::Duration::from_secs(2));
        Ok(ClusterDns {
            resolver: builder.build(),
            domain: domain.to_owned(),
        })
    }

    /// Looks `name` up from `namespace`: the first candidate that exists wins.
    pub async fn lookup(&self, namespace: &str, name: &str) -> Answer {
        for fqdn in candidates(name, namespace, &self.domain) {
            match self.resolver.lookup_ip(fqdn.as_str()).await {
                Ok(found) => {
                    let addrs: Vec<IpAddr> = found.iter().collect();
                    return Answer {
                        fqdn,
                        addrs,
                        domain: self.domain.clone(),
                        error: None,
                    };
                }
                Err(e) if e.is_no_records_found() => continue,
                Err(e) => {
                    return Answer {
                        error: Some(format!("the cluster's DNS did not answer for {fqdn}: {e}")),
                        domain: self.domain.clone(),
                        ..Answer::default()
                    };
                }
            }
        }
        Answer {
            domain: self.domain.clone(),
            ..Answer::default()
        }
    }

    /// The addresses of an absolute name (`tcp:` streams carry a name the laptop already
    /// looked up, or an address).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        Ok(self
            .resolver
            .lookup_ip(fqdn.as_str())
            .await?
            .iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn relative_names_follow_a_pods_search_list() {
        assert_eq!(
            candidates("orders-svc.api", "api", "cluster.local"),
            [
                "orders-svc.api.api.svc.cluster.local.",
                "orders-svc.api.svc.cluster.local.",
                "orders-svc.api.cluster.local.",
            ]
        );
        assert_eq!(
            candidates("Postgres", "data", "cluster.local")[0],
            "postgres.data.svc.cluster.local."
        );
        assert_eq!(
            candidates("pg-0.pg.data", "api", "cluster.local")[1],
            "pg-0.pg.data.svc.cluster.local."
        );
    }

    #[test]
    fn names_in_the_domain_are_asked_as_themselves_and_nothing_leaves_it() {
        assert_eq!(
            candidates("orders-svc.api.svc.cluster.local.", "api", "cluster.local"),
            ["orders-svc.api.svc.cluster.local."]
        );
        for c in candidates("example.com", "api", "cluster.local") {
            assert!(c.ends_with(".cluster.local."), "{c}");
        }
    }

    #[test]
    fn malformed_names_are_not_asked() {
        for bad in ["", ".", "a..b", "a b", "x/y", &"a".repeat(64)] {
            assert!(
                candidates(bad, "api", "cluster.local").is_empty(),
                "{bad:?}"
            );
        }
        assert_eq!(
            candidates("svc", "", "cluster.local").len(),
            2,
            "no namespace: no first"
        );
    }
}
