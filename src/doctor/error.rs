//! What a check can find wrong, each with its cause kept and the fix a person acts on
//! ([`DoctorError::fix`]); [`DoctorError::line`] makes the failing line of the report.

use std::time::Duration;

use super::report::Line;
use crate::{
    build::BuildError, cluster::ClusterError, intercept::InterceptError, registry::AccessError,
    run::RunError,
};

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Config(crate::config::ConfigError),
    #[error("no answer from {what} within {}s", after.as_secs())]
    Timeout {
        what: String,
        after: Duration,
        /// What to do about it: where the slow part is depends on the check.
        fix: &'static str,
    },
    #[error("cannot use the kube context")]
    Cluster(#[source] ClusterError),
    #[error("{server} does not answer /version")]
    ApiServer {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot ask the API server what this user may do")]
    Review(#[source] kube::Error),
    #[error("denied in namespace {namespace}: {}", denied.join(", "))]
    Denied {
        namespace: String,
        /// `verb resource` of each denied request.
        denied: Vec<String>,
    },
    #[error("cannot reach the Docker-API engine")]
    Engine(#[source] BuildError),
    #[error("cannot tell which registry to use")]
    FindRegistry(#[source] BuildError),
    #[error("{host} does not answer /v2/")]
    Registry {
        host: String,
        #[source]
        source: AccessError,
    },
    #[error("{host}/v2/ answers HTTP {status}: not a registry API")]
    NotARegistry { host: String, status: u16 },
    #[error("cannot push the probe image to {registry}")]
    ProbeImage {
        registry: String,
        #[source]
        source: InterceptError,
    },
    #[error("cannot {what} the probe pod in namespace {namespace}")]
    Pod {
        what: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot watch the probe pod in namespace {namespace}")]
    Watch {
        namespace: String,
        #[source]
        source: kube::runtime::watcher::Error,
    },
    #[error("the kubelet cannot pull {image}: {reason}: {message}")]
    Pull {
        image: String,
        reason: String,
        message: String,
    },
    #[error("the probe pod went away before its image was pulled")]
    PodGone,
    #[error("interrupted")]
    Cancelled,
    #[error("cannot make the namespaces `tether run` makes")]
    Namespaces(#[source] RunError),
}

impl DoctorError {
    /// What to do about it, in words; `None` where the finding says it all.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            DoctorError::Timeout { fix, .. } => (*fix).to_owned(),
            DoctorError::Cluster(e) => match e {
                ClusterError::Kubeconfig(_) => {
                    "set KUBECONFIG, or start a local cluster: scripts/dev-cluster up".into()
                }
                ClusterError::NoCurrentContext | ClusterError::NoSuchContext(_) => {
                    "pass --context NAME (`kubectl config get-contexts` lists them)".into()
                }
                ClusterError::NotAllowed { context, file, .. } => format!(
                    "if you mean it, allow it in {}: allow_contexts = [\"{context}\"]",
                    file.display()
                ),
                _ => "check the context with `kubectl config view --minify`".into(),
            },
            DoctorError::ApiServer { .. } => "start the cluster: scripts/dev-cluster up (or \
                 check the context's server and credentials: kubectl cluster-info)"
                .into(),
            DoctorError::Review(_) => {
                "check the context's credentials: kubectl auth can-i --list".into()
            }
            DoctorError::Denied { namespace, .. } => format!(
                "ask the cluster's admin for a Role (or ClusterRole) binding that allows these \
                 in namespace {namespace}"
            ),
            DoctorError::Engine(_) => "start the engine (Docker, or `podman system service`; \
                 scripts/dev-cluster up starts one) or point DOCKER_HOST at it"
                .into(),
            DoctorError::FindRegistry(_) => {
                "name one: `registry = \"host:port\"` in tether.toml, or TETHER_REGISTRY".into()
            }
            DoctorError::Registry { host, source } => match source {
                AccessError::NoCredentials { .. } | AccessError::Refused { .. } => {
                    format!("docker login {host}")
                }
                AccessError::Http { .. } => format!(
                    "start the registry: scripts/dev-cluster up (or check that {host} is the \
                     registry tether.toml names)"
                ),
                AccessError::Credentials { .. } => {
                    "check the credential helper the Docker config names for it".into()
                }
                AccessError::Token { .. } => format!("docker login {host}, then run again"),
            },
            DoctorError::NotARegistry { .. } => {
                "check the `registry` in tether.toml (or TETHER_REGISTRY): host:port of a \
                 registry"
                    .into()
            }
            DoctorError::ProbeImage { registry, source } => {
                if chain_says(source, "HTTP response to HTTPS client") {
                    format!(
                        "{registry} speaks plain HTTP and the engine wants HTTPS: list it as \
                         insecure for the engine (Docker: \"insecure-registries\" in \
                         daemon.json; podman: a [[registry]] with insecure = true in \
                         registries.conf)"
                    )
                } else {
                    "check that the engine can push to the registry (`docker push`); a set \
                     TETHER_AGENT_BINARY must name a static tether-agent"
                        .into()
                }
            }
            DoctorError::Pod { .. } | DoctorError::Watch { .. } => {
                "check that this user may create pods in the \
                 namespace (see the RBAC line)"
                    .into()
            }
            DoctorError::Pull { .. } => "make the registry reachable from the nodes under \
                 the same name (for containerd: a hosts.toml for it, http:// for a plain-HTTP \
                 registry), or name one they reach in tether.toml"
                .into(),
            DoctorError::Config(_) | DoctorError::PodGone | DoctorError::Cancelled => {
                return None;
            }
            // `tether run`'s own hint for what failed (sysctls, AppArmor, /dev/net/tun).
            DoctorError::Namespaces(e) => match e.to_string().split_once("\n  hint: ") {
                Some((_, hint)) => hint.to_owned(),
                None => format!(
                    "check what lets an unprivileged user create a user namespace: {}",
                    crate::run::USERNS_SYSCTLS
                ),
            },
        })
    }

    /// The failing line of `check`: this error and its causes, and the fix (a warning
    /// when interrupted).
    pub fn line(&self, check: &'static str) -> Line {
        let mut found = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            // The first line only: hints after it are the fix's job.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            if !first.is_empty() && !found.contains(first) {
                found.push_str(": ");
                found.push_str(first);
            }
            cause = e.source();
        }
        match self {
            // Interrupted is not the machine's fault: the run exits 130 for it.
            DoctorError::Cancelled => Line::warn(check, found, None),
            _ => Line::fail(check, found, self.fix()),
        }
    }
}

/// Whether `e` or one of its causes says `words` (engines report push errors as text).
fn chain_says(e: &(dyn std::error::Error + 'static), words: &str) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.to_string().contains(words) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// `fut`, or [`DoctorError::Timeout`] once `after` passed: every check's wait is bounded
/// where it is made, so doctor never hangs on a silent peer.
pub async fn within<T>(
    after: Duration,
    what: impl Into<String>,
    fix: &'static str,
    fut: impl Future<Output = Result<T, DoctorError>>,
) -> Result<T, DoctorError> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result,
        Err(_) => Err(DoctorError::Timeout {
            what: what.into(),
            after,
            fix,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_asking_for_credentials_fails_with_docker_login() {
        let e = DoctorError::Registry {
            host: "ghcr.io".into(),
            source: AccessError::NoCredentials {
                host: "ghcr.io".into(),
                where_: "/home/dev/.docker/config.json".into(),
            },
        };
        let line = e.line("registry from the laptop");
        assert_eq!(line.fix.as_deref(), Some("docker login ghcr.io"));
        assert!(
            line.found
                .starts_with("ghcr.io does not answer /v2/: registry ghcr.io asks for"),
            "{}",
            line.found
        );
    }

    #[test]
    fn a_denial_names_verb_and_resource() {
        let e = DoctorError::Denied {
            namespace: "shop".into(),
            denied: vec!["create pods/portforward".into(), "patch deployments".into()],
        };
        let line = e.line("RBAC");
        assert_eq!(
            line.found,
            "denied in namespace shop: create pods/portforward, patch deployments"
        );
        assert!(line.fix.is_some_and(|f| f.contains("namespace shop")));
    }

    #[test]
    fn a_namespace_failure_gets_tether_runs_own_hint() {
        use crate::run::{NamespaceError, RunError};
        let e = DoctorError::Namespaces(RunError::Namespace(NamespaceError::TunDenied {
            source: std::io::Error::from_raw_os_error(13),
        }));
        let line = e.line("user namespaces");
        assert!(
            line.found.contains("/dev/net/tun is not open"),
            "{}",
            line.found
        );
        assert!(!line.found.contains("hint"), "{}", line.found);
        assert!(line.fix.is_some_and(|f| f.contains("ls -l /dev/net/tun")));
    }

    #[test]
    fn a_plain_http_registry_the_engine_refuses_is_named_insecure() {
        let e = DoctorError::ProbeImage {
            registry: "127.0.0.1:5001".into(),
            source: InterceptError::AgentBuild(BuildError::Push {
                reference: "127.0.0.1:5001/p:t".into(),
                message: "pinging container registry 127.0.0.1:5001: Get \"https://127.0.0.1:5001/v2/\": \
                          http: server gave HTTP response to HTTPS client"
                    .into(),
            }),
        };
        let fix = e.fix().unwrap();
        assert!(fix.starts_with("127.0.0.1:5001 speaks plain HTTP"), "{fix}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_a_timeout_with_the_checks_fix() {
        let e = within(
            Duration::from_secs(10),
            "the API server",
            "start it",
            std::future::pending::<Result<(), DoctorError>>(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "no answer from the API server within 10s");
        assert_eq!(e.fix().as_deref(), Some("start it"));
    }
}
