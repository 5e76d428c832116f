//! Which cluster tether talks to, and whether it may deploy there.
//!
//! A kube context that does not look like a cluster on this machine is refused unless the
//! project allows it by name: a stray `kubectl config use-context prod` must never turn a
//! save in an editor into a production deploy.

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cannot read the kubeconfig: {0}\n  hint: set KUBECONFIG, or start a local cluster with `scripts/dev-cluster up`"
    )]
    Kubeconfig(String),
    #[error("kube context `{0}` is not in the kubeconfig")]
    NoSuchContext(String),
    #[error("cannot connect to the cluster of context `{context}`: {message}")]
    Connect { context: String, message: String },
    #[error(
        "refusing to deploy to kube context `{context}` (server {server}): it does not look like a local cluster.\n  \
         If you mean it, allow it in {file}:\n    allow_contexts = [\"{context}\"]"
    )]
    NotAllowed {
        context: String,
        server: String,
        file: String,
    },
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The kube context's name; records and safety decisions are per context.
    pub context: String,
    pub server: String,
}

impl Cluster {
    /// Connects through the kubeconfig's `context`, or its current context.
    pub async fn connect(context: Option<&str>) -> Result<Cluster, ClusterError> {
        let kubeconfig = Kubeconfig::read().map_err(|e| ClusterError::Kubeconfig(e.to_string()))?;
        let name = match context {
            Some(c) => c.to_owned(),
            None => kubeconfig
                .current_context
                .clone()
                .ok_or_else(|| ClusterError::Kubeconfig("it names no current context".into()))?,
        };
        if !kubeconfig.contexts.iter().any(|c| c.name == name) {
            return Err(ClusterError::NoSuchContext(name));
        }
        let options = KubeConfigOptions {
            context: Some(name.clone()),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| ClusterError::Connect {
                context: name.clone(),
                message: e.to_string(),
            })?;
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| ClusterError::Connect {
            context: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Cluster {
            client,
            context: name,
            server,
        })
    }

    /// Refuses a context that does not look local unless `allowed` names it.
    pub fn check_allowed(&self, allowed: &[String], config_file: &str) -> Result<(), ClusterError> {
        if looks_local(&self.context, &self.server) || allowed.contains(&self.context) {
            Ok(())
        } else {
            Err(ClusterError::NotAllowed {
                context: self.context.clone(),
                server: self.server.clone(),
                file: config_file.to_owned(),
            })
        }
    }
}

/// Context names of the local cluster tools, and API servers on loopback.
pub fn looks_local(context: &str, server: &str) -> bool {
    const LOCAL_NAMES: &[&str] = &[
        "tether-dev",
        "minikube",
        "docker-desktop",
        "docker-for-desktop",
        "rancher-desktop",
        "orbstack",
        "colima",
        "microk8s",
    ];
    const LOCAL_PREFIXES: &[&str] = &["kind-", "k3d-", "tether-dev-"];
    if LOCAL_NAMES.contains(&context) || LOCAL_PREFIXES.iter().any(|p| context.starts_with(p)) {
        return true;
    }
    let host = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split('/')
        .next()
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host == "localhost"
        || host.starts_with("127.")
        || host == "[::1]"
        || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_contexts_are_recognised() {
        assert!(looks_local("kind-dev", "https://10.0.0.5:6443"));
        assert!(looks_local("tether-dev", "https://192.0.2.2:6443"));
        assert!(looks_local("anything", "https://127.0.0.1:41234"));
        assert!(looks_local("anything", "https://localhost:6443/"));
        assert!(looks_local("anything", "https://[::1]:6443"));
        assert!(!looks_local("prod-eu", "https://api.prod.example.com"));
        assert!(!looks_local("gke_proj_zone_cluster", "https://34.1.2.3"));
        assert!(!looks_local("kindly-prod", "https://34.1.2.3"));
    }
}
