//! `down`: what the record says this project created, deleted while it is still tether's.

use std::{collections::BTreeSet, path::Path};

use kube::Client;

use super::{Applier, Deleted, DeployError, ObjectRef, Record};

/// What `down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    pub deleted: Vec<ObjectRef>,
    /// Objects that existed before `up` and were left in place.
    pub kept: Vec<ObjectRef>,
    /// Objects of the record that are no longer tether's (re-created or taken by someone
    /// else since): left untouched.
    pub foreign: Vec<ObjectRef>,
    pub failures: Vec<String>,
}

/// Deletes everything the record says this project created in the cluster `cluster_id`,
/// each only while it is still the object tether made (see [`Applier::delete_owned`]).
/// Namespaces are kept unless `delete_namespaces`: they may hold other people's work.
/// `own_namespace` (a profile's: made for this run alone) goes like any other object.
/// The objects of `shared` resources are left to [`crate::shared::leave_all`]: other
/// consumers may still use them, and the record in the cluster knows.
#[allow(clippy::too_many_arguments)]
pub async fn down(
    client: Client,
    root: &Path,
    context: &str,
    cluster_id: &str,
    delete_namespaces: bool,
    own_namespace: Option<&str>,
    shared: &BTreeSet<String>,
    mut progress: impl FnMut(&str),
) -> Result<DownReport, DeployError> {
    let mut path = Record::path(root, cluster_id);
    if !path.exists() && Record::legacy_path(root, context).exists() {
        path = Record::legacy_path(root, context);
    }
    let record_err = |source| DeployError::Record {
        path: path.clone(),
        source,
    };
    let Some(record) = Record::load(&path).map_err(record_err)? else {
        progress(
            "nothing to remove: this project has no record of applied objects in this cluster",
        );
        return Ok(DownReport::default());
    };
    let applier = Applier::new(client);
    let mut report = DownReport::default();
    let mut to_delete = Vec::new();
    for e in record
        .objects
        .iter()
        .filter(|e| !shared.contains(&e.resource))
    {
        let is_ns =
            e.object.kind == "Namespace" && own_namespace.is_none_or(|own| own != e.object.name);
        if e.created && (!is_ns || delete_namespaces) {
            to_delete.push(e);
        } else {
            report.kept.push(e.object.clone());
        }
    }
    // Namespaces last, so their contents are not deleted out from under the report.
    to_delete.sort_by_key(|e| (e.object.kind == "Namespace", e.object.clone()));
    for e in to_delete {
        let r = &e.object;
        match applier
            .delete_owned(r, &record.session, e.uid.as_deref())
            .await
        {
            Ok(Deleted::Deleted) => {
                progress(&format!("deleted {r}"));
                report.deleted.push(r.clone());
            }
            Ok(Deleted::Gone) => {}
            Ok(Deleted::NotOurs(why)) => {
                progress(&format!("kept {r}: {why}"));
                report.foreign.push(r.clone());
            }
            Err(e) => report.failures.push(e.to_string()),
        }
    }
    for k in &report.kept {
        match applier.disown(k).await {
            Ok(true) => progress(&format!(
                "kept {k} without tether's labels ({})",
                if k.kind == "Namespace" {
                    "namespaces stay unless --delete-namespaces"
                } else {
                    "it existed before tether"
                }
            )),
            Ok(false) => {}
            Err(e) => report.failures.push(e.to_string()),
        }
    }
    if report.failures.is_empty() {
        std::fs::remove_file(&path).map_err(record_err)?;
    }
    Ok(report)
}
