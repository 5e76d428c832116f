//! `down` in a profile with shared resources: each instance is left (this checkout off
//! its consumers), kept while others use it, and removed by the last one out.

use std::collections::BTreeSet;

use kube::Client;

use super::{
    SharedError,
    decide::Left,
    record::{Consumer, label},
    store::Store,
};
use crate::{
    config::Profile,
    deploy::{Applier, Deleted},
};

/// What leaving the profile's instances did.
#[derive(Debug, Default)]
pub struct LeaveReport {
    /// Namespaces where an instance stays for other consumers: not to be deleted.
    pub still_used: BTreeSet<String>,
    pub deleted: usize,
    pub failures: Vec<String>,
}

/// Leaves every shared instance of `profile` as `me`, saying each step to `progress`.
pub async fn leave_all(
    client: &Client,
    profile: &Profile,
    me: &Consumer,
    mut progress: impl FnMut(&str),
) -> LeaveReport {
    let mut report = LeaveReport::default();
    let namespace = profile.shared_namespace();
    let applier = Applier::new(client.clone());
    for resource in profile.shared.keys() {
        let store = Store::new(client.clone(), namespace, resource);
        match store.leave(me).await {
            Ok(None) => {}
            Ok(Some(Left::Remain(inst))) => {
                report.still_used.insert(namespace.to_owned());
                progress(&format!(
                    "[{resource}] left running for {}",
                    inst.consumers_in_words()
                ));
            }
            Ok(Some(Left::Last(inst))) => {
                let owner = label(resource);
                for part in &inst.parts {
                    let r = &part.object;
                    match applier.delete_owned(r, &owner, part.uid.as_deref()).await {
                        Ok(Deleted::Deleted) => {
                            report.deleted += 1;
                            progress(&format!("deleted {r}"));
                        }
                        Ok(Deleted::Gone) => {}
                        Ok(Deleted::NotOurs(why)) => progress(&format!("kept {r}: {why}")),
                        Err(e) => report.failures.push(e.to_string()),
                    }
                }
                progress(&format!(
                    "[{resource}] shared instance in {namespace} removed: no consumer left"
                ));
            }
            Err(e) => report.failures.push(error_words(&e)),
        }
    }
    report
}

/// The error and its causes, one after the other.
fn error_words(e: &SharedError) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}
