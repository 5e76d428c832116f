//! [`Deployer`]: one project's resources rendered (images pinned, objects stamped) and
//! applied in one cluster, each object recorded before it is sent.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::Mutex,
};

use kube::{Client, api::DynamicObject};

use super::{
    Applied, Applier, DeployError, ObjectRef, Record, Workload, apply, manifest, overrides,
    session_id, sources,
};
use crate::{
    config::Resource,
    live::inject::{self, Injection, Supervised},
};

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
    /// A profile's shared resources: their objects carry the instance's label instead
    /// of this checkout's, so the same rendering has the same hash from every checkout
    /// and the last consumer out may delete what another applied.
    shared: BTreeSet<String>,
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
            shared: BTreeSet::new(),
        })
    }

    /// Marks `resources` as shared instances (see [`crate::shared`]).
    pub fn share(mut self, resources: impl IntoIterator<Item = String>) -> Deployer {
        self.shared.extend(resources);
        self
    }

    /// The ownership label of `resource`'s objects.
    pub fn label_for(&self, resource: &str) -> String {
        if self.shared.contains(resource) {
            crate::shared::label(resource)
        } else {
            self.session.clone()
        }
    }

    /// The UIDs the cluster gave `resource`'s objects, as recorded.
    pub fn uids(&self, resource: &str) -> BTreeMap<ObjectRef, String> {
        let Ok(record) = self.record.lock() else {
            return BTreeMap::new();
        };
        record
            .objects
            .iter()
            .filter(|e| e.resource == resource)
            .filter_map(|e| Some((e.object.clone(), e.uid.clone()?)))
            .collect()
    }

    pub fn client(&self) -> &Client {
        self.applier.client()
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// The applier, for a preview of what it would send.
    pub(super) fn applier(&self) -> &Applier {
        &self.applier
    }

    /// The record's entries as they stand.
    pub(super) fn record_entries(&self) -> Vec<super::record::Entry> {
        self.record
            .lock()
            .map(|r| r.objects.clone())
            .unwrap_or_default()
    }

    /// Renders the objects `read` from the resource's manifests (this round's
    /// [`sources::read`]): writes the profile's `set` over them, puts the live-update supervisor into the workloads of `live`'s
    /// images, pins built images (`image name → reference`), fills namespaces and stamps
    /// labels.
    pub async fn render(
        &self,
        resource: &Resource,
        read: &[sources::Read],
        built: &BTreeMap<String, String>,
        live: Option<&Injection<'_>>,
    ) -> Result<Rendered, DeployError> {
        let mut objects = Vec::new();
        let mut images = Vec::new();
        let mut supervised = Vec::new();
        let label = self.label_for(&resource.name);
        for source in read {
            let source = source.as_ref().map_err(|e| DeployError::Read(e.clone()))?;
            for mut obj in source.objects.iter().cloned() {
                if resource.force_namespace {
                    // A profile's run stays in the profile's namespace: the manifests'
                    // own namespaces (and the Namespace objects that make them) are
                    // someone else's, shared ones.
                    let kind = obj.types.as_ref().map(|t| t.kind.as_str());
                    if !source.tethers_own && kind == Some("Namespace") {
                        continue;
                    }
                    obj.metadata.namespace = None;
                }
                let kind = obj
                    .types
                    .as_ref()
                    .map(|t| t.kind.clone())
                    .unwrap_or_default();
                overrides::apply(&resource.overrides, &kind, &mut obj.data);
                if let Some(live) = live {
                    supervised.extend(inject::inject(&mut obj, live)?);
                }
                images.extend(manifest::pin_images(&mut obj, built));
                let r = self
                    .applier
                    .prepare(&mut obj, &resource.namespace, &label, &resource.name)
                    .await?;
                objects.push((r, obj));
            }
        }
        // The token's Secret goes first: the supervised pods read it as they start.
        if let (Some(live), false) = (live, supervised.is_empty()) {
            let mut secret = inject::secret(live.secret, &resource.namespace, live.token);
            let r = self
                .applier
                .prepare(&mut secret, &resource.namespace, &label, &resource.name)
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
        let label = self.label_for(resource);
        for (r, obj) in &rendered.objects {
            let live = self.applier.existing(r, &label).await?;
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
