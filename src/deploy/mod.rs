//! Deploying resources into the cluster and removing them again.
//!
//! Layout:
//! - [`manifest`]: YAML to rendered objects (namespace, pinned images, ownership labels).
//! - [`apply`]: server-side apply with the `tether` field manager, skipping unchanged objects.
//! - [`record`]: what was applied, written before each send, read by `down`.
//! - [`rollout`]: readiness, and the reason in words when a pod is not ready.

pub mod apply;
pub mod manifest;
pub mod record;
pub mod rollout;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use kube::{Client, api::DynamicObject};

pub use self::{
    apply::{Applied, Applier, ApplyError, ObjectRef},
    record::Record,
    rollout::Workload,
};
use crate::config::Resource;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot write the record of applied objects at {path}")]
    Record {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One resource's objects, ready to send.
pub struct Rendered {
    pub objects: Vec<(ObjectRef, DynamicObject)>,
    pub workloads: Vec<Workload>,
    /// Image names (from config) that this resource's workloads use.
    pub images: Vec<String>,
}

/// Counts of what one apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
}

/// Applies resources for one project in one context, keeping the record.
pub struct Deployer {
    applier: Applier,
    session: String,
    record_path: PathBuf,
    record: Mutex<Record>,
}

impl Deployer {
    pub fn new(client: Client, root: &Path, context: &str) -> Result<Deployer, DeployError> {
        let record_path = Record::path(root, context);
        let record_err = |source| DeployError::Record {
            path: record_path.clone(),
            source,
        };
        let session = session_id(root);
        let record = Record::load(&record_path)
            .map_err(record_err)?
            .unwrap_or(Record {
                session: session.clone(),
                context: context.to_owned(),
                objects: Vec::new(),
            });
        Ok(Deployer {
            applier: Applier::new(client),
            session,
            record_path,
            record: Mutex::new(record),
        })
    }

    pub fn client(&self) -> &Client {
        self.applier.client()
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Reads the resource's manifests, pins built images (`image name → reference`),
    /// fills namespaces and stamps labels.
    pub async fn render(
        &self,
        resource: &Resource,
        built: &BTreeMap<String, String>,
    ) -> Result<Rendered, DeployError> {
        let mut objects = Vec::new();
        let mut images = Vec::new();
        for file in &resource.manifests {
            for mut obj in manifest::read(file)? {
                images.extend(manifest::pin_images(&mut obj, built));
                let r = self
                    .applier
                    .prepare(&mut obj, &resource.namespace, &self.session, &resource.name)
                    .await?;
                objects.push((r, obj));
            }
        }
        images.sort();
        images.dedup();
        let plain: Vec<_> = objects.iter().map(|(_, o)| o.clone()).collect();
        Ok(Rendered {
            workloads: Workload::from_objects(&plain),
            objects,
            images,
        })
    }

    /// Sends the objects whose rendered form differs from what is live. Each object is
    /// recorded before it is sent.
    pub async fn apply(
        &self,
        resource: &str,
        rendered: &Rendered,
    ) -> Result<ApplyCounts, DeployError> {
        let mut counts = ApplyCounts::default();
        for (r, obj) in &rendered.objects {
            let (existing, live_hash) = self.applier.existing(r, &self.session).await?;
            let created_by_us = match existing {
                apply::Existing::Absent => true,
                apply::Existing::Ours => self.record_says_created(r).unwrap_or(true),
                apply::Existing::Foreign => false,
            };
            self.note(r, resource, created_by_us)?;
            let existed = existing != apply::Existing::Absent;
            match self
                .applier
                .apply(r, obj, live_hash.as_deref(), existed)
                .await?
            {
                Applied::Created => counts.created += 1,
                Applied::Configured => counts.configured += 1,
                Applied::Unchanged => counts.unchanged += 1,
            }
        }
        Ok(counts)
    }

    fn record_says_created(&self, r: &ObjectRef) -> Option<bool> {
        self.record.lock().ok()?.get(r).map(|e| e.created)
    }

    fn note(&self, r: &ObjectRef, resource: &str, created: bool) -> Result<(), DeployError> {
        let Ok(mut record) = self.record.lock() else {
            return Ok(());
        };
        if record.note(r.clone(), resource, created) {
            record
                .save(&self.record_path)
                .map_err(|source| DeployError::Record {
                    path: self.record_path.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// The ownership label value for the project rooted at `root`: its folder name for people,
/// and a hash of its path so two checkouts never claim each other's objects.
pub fn session_id(root: &Path) -> String {
    use sha2::{Digest as _, Sha256};
    let hash = hex::encode(&Sha256::digest(root.to_string_lossy().as_bytes())[..5]);
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        hash
    } else {
        format!("{name}-{hash}")
    }
}

/// What `down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    pub deleted: Vec<ObjectRef>,
    /// Objects that existed before `up` and were left in place.
    pub kept: Vec<ObjectRef>,
    pub failures: Vec<String>,
}

/// Deletes everything the record says this project created in `context`, then sweeps
/// the record's kinds and namespaces for anything else carrying this session's label.
/// Namespaces are kept unless `delete_namespaces`: they may hold other people's work.
pub async fn down(
    client: Client,
    root: &Path,
    context: &str,
    delete_namespaces: bool,
    mut progress: impl FnMut(&str),
) -> Result<DownReport, DeployError> {
    let path = Record::path(root, context);
    let record_err = |source| DeployError::Record {
        path: path.clone(),
        source,
    };
    let session = session_id(root);
    let Some(record) = Record::load(&path).map_err(record_err)? else {
        progress(
            "nothing to remove: this project has no record of applied objects in this context",
        );
        return Ok(DownReport::default());
    };
    let applier = Applier::new(client);
    let mut report = DownReport::default();
    let mut to_delete: Vec<ObjectRef> = Vec::new();
    for e in &record.objects {
        let is_ns = e.object.kind == "Namespace";
        if e.created && (!is_ns || delete_namespaces) {
            to_delete.push(e.object.clone());
        } else {
            report.kept.push(e.object.clone());
        }
    }
    // Labelled leftovers of the same kinds, e.g. from a record written by an older run.
    let mut probes: Vec<ObjectRef> = record.objects.iter().map(|e| e.object.clone()).collect();
    probes.sort_by(|a, b| {
        (&a.api_version, &a.kind, &a.namespace).cmp(&(&b.api_version, &b.kind, &b.namespace))
    });
    probes.dedup_by(|a, b| {
        a.api_version == b.api_version && a.kind == b.kind && a.namespace == b.namespace
    });
    for probe in probes.iter().filter(|p| p.kind != "Namespace") {
        match applier.labelled(probe, &session).await {
            Ok(found) => to_delete.extend(found.into_iter().filter(|f| !report.kept.contains(f))),
            Err(e) => report.failures.push(e.to_string()),
        }
    }
    to_delete.sort();
    to_delete.dedup();
    // Namespaces last, so their contents are not deleted out from under the report.
    to_delete.sort_by_key(|r| r.kind == "Namespace");
    for r in to_delete {
        match applier.delete(&r).await {
            Ok(true) => {
                progress(&format!("deleted {r}"));
                report.deleted.push(r);
            }
            Ok(false) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_label_values_unique_per_path() {
        let a = session_id(Path::new("/home/me/Shop Payments"));
        assert!(a.starts_with("shop-payments-"), "{a}");
        assert!(a.len() <= 63);
        assert_ne!(a, session_id(Path::new("/other/Shop Payments")));
        assert_eq!(session_id(Path::new("/")).len(), 10);
    }
}
