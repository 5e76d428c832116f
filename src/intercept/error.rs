//! What can go wrong with an intercept, each case deciding whether the user's input was
//! wrong (exit 2) or something failed (exit 1). Causes are kept as sources.

#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    #[error(
        "there is no Service `{service}` in namespace `{namespace}`\n  hint: `tether list -n {namespace}` shows what can be intercepted"
    )]
    NoService { service: String, namespace: String },
    #[error("Service `{0}` has no selector, so no workload of tether's to put an agent in")]
    NoSelector(String),
    #[error("no Deployment runs the pods of Service `{0}`")]
    NoWorkload(String),
    #[error("Service `{service}` is served by {kind} {name}; only Deployments can be intercepted")]
    UnsupportedKind {
        service: String,
        kind: String,
        name: String,
    },
    #[error("Service `{service}` selects the pods of several Deployments ({}); intercept one that selects a single Deployment", names.join(", "))]
    ManyWorkloads { service: String, names: Vec<String> },
    #[error(
        "Service `{service}` does not serve port {port}; it serves {} (service port → container port)\n  hint: `-p LOCAL:REMOTE` with REMOTE a service port's number or name",
        served.join(", ")
    )]
    PortNotServed {
        service: String,
        port: String,
        served: Vec<String>,
    },
    #[error(
        "Service `{service}` has several ports: {}\n  hint: say which one with `-p LOCAL:REMOTE`, e.g. `-p {local}:{}`",
        served.join(", "), served.first().map(String::as_str).unwrap_or("80")
    )]
    WhichPort {
        service: String,
        local: u16,
        served: Vec<String>,
    },
    #[error(
        "bad --port `{0}`: expected LOCAL or LOCAL:REMOTE (REMOTE a service port's number or name)"
    )]
    BadPort(String),
    #[error(
        "two --port flags take Service `{service}`'s port {port}; give each a different REMOTE (-p LOCAL:REMOTE)"
    )]
    SamePort { service: String, port: i32 },
    #[error("Service `{0}`'s port is not TCP; only TCP can be intercepted")]
    NotTcp(String),
    #[error(
        "nothing listens on 127.0.0.1:{0}; start your process first, then intercept\n  (nothing was changed in the cluster)"
    )]
    NothingListening(u16),
    #[error(
        "Service `{service}` is already intercepted on port {}; intercept the same ports or `tether leave {service}` first", ports.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
    )]
    OtherPort { service: String, ports: Vec<i32> },
    #[error(
        "Deployment `{deployment}` already carries tether's agent for Service `{service}`; one intercept per Deployment: `tether leave {service}` first\n  (nothing was changed in the cluster)"
    )]
    OtherService { deployment: String, service: String },
    #[error(
        "{kind} `{name}` has {size} bytes of annotations; tether's records need {need} more, over Kubernetes' limit of {limit} bytes\n  (nothing was changed in the cluster)"
    )]
    AnnotationsFull {
        kind: &'static str,
        name: String,
        size: usize,
        need: usize,
        limit: usize,
    },
    #[error(
        "a Secret `{0}` exists and is not tether's; tether keeps its attach token there\n  (nothing was changed in the cluster)"
    )]
    SecretNotOurs(String),
    #[error("Service `{0}` is not intercepted")]
    NotIntercepted(String),
    #[error("bad --header `{0}`: expected NAME=VALUE")]
    BadHeader(String),
    #[error("the agent image: {0}")]
    AgentImage(String),
    #[error("the agent image: {what}")]
    AgentImageIo {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent image")]
    AgentBuild(#[source] crate::build::BuildError),
    #[error("the agent did not start: {reason}\n  (the Service and Deployment were restored)")]
    Rollout { reason: String },
    #[error("{0}")]
    Corrupt(String),
    #[error("tether's record on {what} cannot be read or written")]
    Record {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Env(String),
    #[error("cannot make a random attach token")]
    Random(#[source] std::io::Error),
    #[error("cluster: {what}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0} kept changing under tether; try again")]
    KeptChanging(String),
}

impl InterceptError {
    /// Whether the user's input was wrong (exit code 2) rather than something failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            InterceptError::NoService { .. }
                | InterceptError::NoSelector(_)
                | InterceptError::NoWorkload(_)
                | InterceptError::UnsupportedKind { .. }
                | InterceptError::ManyWorkloads { .. }
                | InterceptError::PortNotServed { .. }
                | InterceptError::WhichPort { .. }
                | InterceptError::BadPort(_)
                | InterceptError::SamePort { .. }
                | InterceptError::NotTcp(_)
                | InterceptError::NothingListening(_)
                | InterceptError::OtherPort { .. }
                | InterceptError::OtherService { .. }
                | InterceptError::AnnotationsFull { .. }
                | InterceptError::SecretNotOurs(_)
                | InterceptError::NotIntercepted(_)
                | InterceptError::BadHeader(_)
        )
    }
}

/// Wraps a kube error with what tether was doing.
pub(crate) fn kube_err(what: impl std::fmt::Display) -> impl FnOnce(kube::Error) -> InterceptError {
    move |source| InterceptError::Kube {
        what: what.to_string(),
        source,
    }
}
