//! What can go wrong with a connect session, each case deciding whether the user's input
//! was wrong (exit 2) or something failed (exit 1). Causes are kept as sources.

use std::path::PathBuf;

use crate::intercept::InterceptError;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("there is no namespace `{0}` in this cluster\n  hint: `kubectl get namespaces`")]
    NoNamespace(String),
    #[error(
        "this laptop is already connected to context `{context}` (namespace {namespace}, pid {pid}); \
         `tether connect --quit` first"
    )]
    HeldElsewhere {
        context: String,
        namespace: String,
        pid: u32,
    },
    #[error("cannot listen on {addr} ({flag})")]
    Listen {
        addr: std::net::SocketAddr,
        flag: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {}", path.display())]
    State {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no connect session is running on this laptop")]
    NotConnected,
    #[error("{0}")]
    Kube(String, #[source] kube::Error),
    #[error("the connect agent did not become ready within {0} s: {1}")]
    NotReady(u64, String),
    #[error("installing the connect agent")]
    Agent(#[source] InterceptError),
    #[error("finding the cluster's image registry")]
    Registry(#[source] crate::build::BuildError),
    #[error("the connect agent refused this laptop: {0}")]
    Refused(String),
    #[error("the connect session's answer could not be read")]
    Control(#[source] std::io::Error),
}

impl ConnectError {
    /// Whether the fault is in what the user asked (exit 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ConnectError::NoNamespace(_) | ConnectError::HeldElsewhere { .. }
        ) || matches!(self, ConnectError::Agent(e) if e.is_bad_input())
    }
}

/// Wraps a kube error with what was being done.
pub fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ConnectError {
    let what = what.into();
    move |e| ConnectError::Kube(what, e)
}
