//! What can go wrong with the policy, each case deciding whether the user's input was
//! wrong (exit 2) or something failed (exit 1). Causes are kept as sources.

use std::path::PathBuf;

use super::decide::Refusal;
use crate::config::Location;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    /// The identity may not do what it asked.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A 403: the API server's own words (which name the RBAC or admission rule) are
    /// the cause, so they are kept rather than the whole status.
    #[error(
        "{user} may not read the policy (ConfigMap {namespace}/{name}), so tether cannot tell \
         what {user} may deploy: refusing to proceed ({said})\n  \
         hint: an admin grants every user `get` on it (scripts/cluster/policy.yaml does)"
    )]
    Unreadable {
        user: String,
        namespace: &'static str,
        name: &'static str,
        said: String,
    },
    #[error("cannot read the policy (ConfigMap {namespace}/{name})")]
    ReadStored {
        namespace: &'static str,
        name: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the policy in ConfigMap {namespace}/{name} is not valid, so tether cannot tell what \
         may be deployed: refusing to proceed (an admin fixes it with `tether policy apply`)"
    )]
    StoredInvalid {
        namespace: &'static str,
        name: &'static str,
        #[source]
        source: Box<PolicyError>,
    },
    #[error("the policy (ConfigMap {namespace}/{name}) holds no key `{key}`: refusing to proceed")]
    StoredNoKey {
        namespace: &'static str,
        name: &'static str,
        key: &'static str,
    },
    #[error("the cluster refused {user} writing {what}: {said}")]
    WriteDenied {
        user: String,
        what: String,
        said: String,
    },
    #[error("cannot write {what}")]
    Write {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl PolicyError {
    /// Whether the user's input (a file, or a request the policy refuses) was wrong.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Read { .. }
                | Self::Invalid { .. }
                | Self::Refused(_)
                | Self::Unreadable { .. }
                | Self::WriteDenied { .. }
        )
    }
}
