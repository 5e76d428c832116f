//! Deploying resources into the cluster and removing them again.
//!
//! Layout:
//! - [`sources`]: a resource's objects from its YAML files, kustomizations and charts.
//! - [`manifest`]: YAML to rendered objects (namespace, pinned images, ownership labels).
//! - [`apply`]: server-side apply with the `tether` field manager, skipping unchanged objects.
//! - [`record`]: what was applied, written before each send, read by `down`.
//! - [`rollout`]: readiness, and the reason in words when a pod is not ready.

pub mod apply;
pub mod manifest;
pub mod record;
pub mod rollout;
pub mod sources;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use kube::{Client, api::DynamicObject};

pub use self::{
    apply::{Applied, Applier, ApplyError, Deleted, ObjectRef},
    record::Record,
    rollout::Workload,
};
use crate::{
    config::Resource,
    live::inject::{self, Injection, Supervised},
};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Live(#[from] crate::live::inject::InjectError),
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
    /// The containers that run under tether's live-update supervisor.
    pub supervised: Vec<Supervised>,
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
    /// A deployer for the project at `root` in the cluster `cluster_id`, reached through
    /// `context`.
    pub fn new(
        client: Client,
        root: &Path,
        context: &str,
        cluster_id: &str,
    ) -> Result<Deployer, DeployError> {
        let record_path = Record::path(root, cluster_id);
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
                cluster: cluster_id.to_owned(),
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

    /// Reads the resource's manifests, puts the live-update supervisor into the workloads
    /// of `live`'s images, pins built images (`image name → reference`), fills
    /// namespaces and stamps labels.
    pub async fn render(
        &self,
        resource: &Resource,
        built: &BTreeMap<String, String>,
        live: Option<&Injection<'_>>,
    ) -> Result<Rendered, DeployError> {
        let mut objects = Vec::new();
        let mut images = Vec::new();
        let mut supervised = Vec::new();
        for source in &resource.manifests {
            for mut obj in sources::objects(source, &resource.namespace)? {
                if let Some(live) = live {
                    supervised.extend(inject::inject(&mut obj, live)?);
                }
                images.extend(manifest::pin_images(&mut obj, built));
                let r = self
                    .applier
                    .prepare(&mut obj, &resource.namespace, &self.session, &resource.name)
                    .await?;
                objects.push((r, obj));
            }
        }
        // The token's Secret goes first: the supervised pods read it as they start.
        if let (Some(live), false) = (live, supervised.is_empty()) {
            let mut secret = inject::secret(live.secret, &resource.namespace, live.token);
            let r = self
                .applier
                .prepare(
                    &mut secret,
                    &resource.namespace,
                    &self.session,
                    &resource.name,
                )
                .await?;
            objects.insert(0, (r, secret));
        }
        images.sort();
        images.dedup();
        let plain: Vec<_> = objects.iter().map(|(_, o)| o.clone()).collect();
        Ok(Rendered {
            workloads: Workload::from_objects(&plain),
            objects,
            images,
            supervised,
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
            let live = self.applier.existing(r, &self.session).await?;
            // Labelled ours but not in our record: another checkout with a colliding
            // label made it. Adopt it rather than claim it.
            let created_by_us = match live.existing {
                apply::Existing::Absent => true,
                apply::Existing::Ours => self.record_says_created(r).unwrap_or(false),
                apply::Existing::Foreign => false,
            };
            self.note(r, resource, created_by_us, None)?;
            let (applied, uid) = self.applier.apply(r, obj, &live).await?;
            self.note(r, resource, created_by_us, uid.as_deref())?;
            match applied {
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

    fn note(
        &self,
        r: &ObjectRef,
        resource: &str,
        created: bool,
        uid: Option<&str>,
    ) -> Result<(), DeployError> {
        let Ok(mut record) = self.record.lock() else {
            return Ok(());
        };
        if record.note(r.clone(), resource, created, uid) {
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
/// and a hash of this machine's name and the path, so two checkouts (also at the same
/// path on two laptops) never claim each other's objects.
pub fn session_id(root: &Path) -> String {
    session_id_on(&host_name(), root)
}

fn session_id_on(host: &str, root: &Path) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    hash.update(host.as_bytes());
    hash.update([0]);
    hash.update(root.to_string_lossy().as_bytes());
    let hash = hex::encode(&hash.finalize()[..5]);
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

/// This machine's name, as the kernel has it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

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
pub async fn down(
    client: Client,
    root: &Path,
    context: &str,
    cluster_id: &str,
    delete_namespaces: bool,
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
    for e in &record.objects {
        let is_ns = e.object.kind == "Namespace";
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_label_values_unique_per_path() {
        let a = session_id_on("laptop", Path::new("/home/me/Shop Payments"));
        assert!(a.starts_with("shop-payments-"), "{a}");
        assert!(a.len() <= 63);
        assert_ne!(
            a,
            session_id_on("laptop", Path::new("/other/Shop Payments"))
        );
        assert_ne!(
            a,
            session_id_on("other-laptop", Path::new("/home/me/Shop Payments")),
            "the same path on two machines is two checkouts"
        );
        assert_eq!(session_id_on("laptop", Path::new("/")).len(), 10);
    }
}
