//! The errors of connecting to a cluster and of the context guard.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cannot read the kubeconfig (set KUBECONFIG, or start a local cluster with `scripts/dev-cluster up`)"
    )]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("the kubeconfig names no current context\n  hint: pass --context NAME")]
    NoCurrentContext,
    #[error(
        "kube context `{0}` is not in the kubeconfig\n  hint: `kubectl config get-contexts` lists them"
    )]
    NoSuchContext(String),
    #[error("cannot use kube context `{context}`")]
    Config {
        context: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot make a client for the cluster of context `{context}`")]
    Client {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "refusing to change the cluster of kube context `{context}` (server {server}): it does not look like a local cluster.\n  \
         If you mean it, allow it in {}:\n    allow_contexts = [\"{context}\"]",
        file.display()
    )]
    NotAllowed {
        context: String,
        server: String,
        file: PathBuf,
    },
    #[error("cannot read {}", path.display())]
    AllowFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    AllowParse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

impl ClusterError {
    /// Whether the user's input was wrong (exit code 2) rather than something failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::NoCurrentContext
                | Self::NoSuchContext(_)
                | Self::NotAllowed { .. }
                | Self::AllowParse { .. }
        )
    }
}
