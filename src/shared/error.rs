//! What stops joining or leaving a shared instance.

use super::record::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The instance runs another rendering, and this user is not its owner.
    #[error(
        "shared instance `{resource}` in {namespace} runs another version (owner {owner}, \
         consumers {consumers}); only {owner} may change it:\n  {}",
        difference.join("\n  ")
    )]
    Refused {
        resource: String,
        namespace: String,
        owner: String,
        consumers: String,
        difference: Vec<String>,
    },
    #[error("cannot {action} ConfigMap {name} in {namespace}")]
    Api {
        action: &'static str,
        name: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("ConfigMap {name} in {namespace} is not a shared instance's record")]
    Record {
        name: String,
        namespace: String,
        #[source]
        source: RecordError,
    },
    #[error("ConfigMap {name} in {namespace} kept changing: gave up after {tries} tries")]
    Contended {
        name: String,
        namespace: String,
        tries: usize,
    },
}

impl SharedError {
    /// A refusal is the user's to fix (ask the owner, or undo the change); the rest are
    /// the cluster's failures.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}
