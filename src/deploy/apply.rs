//! Server-side apply of rendered objects, sending only those whose rendered form changed.
//!
//! The API for each kind is found through discovery once and cached; objects are applied
//! with the `tether` field manager, so ownership of fields is visible to `kubectl` users and
//! other tools keep theirs.

use std::{collections::HashMap, sync::Mutex};

use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy},
    core::GroupVersionKind,
    discovery::{ApiCapabilities, ApiResource, Scope},
    runtime::wait::{await_condition, conditions},
};
use serde::{Deserialize, Serialize};

use super::manifest::{self, HASH_ANNOTATION, MANAGED_BY, RESOURCE_LABEL, SESSION_LABEL};

pub const FIELD_MANAGER: &str = "tether";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the cluster does not serve {kind} ({api_version}): {message}")]
    UnknownKind {
        api_version: String,
        kind: String,
        message: String,
    },
    #[error("{object}: {message}")]
    Api { object: ObjectRef, message: String },
}

/// Identifies one object in the cluster; what the record keeps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} in {ns}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist: tether made it, and `down` will delete it.
    Created,
    /// It existed and its rendered form changed.
    Configured,
    /// It existed in exactly this form: nothing was sent.
    Unchanged,
}

/// An object as it stood in the cluster just before it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub existing: Existing,
    /// Its rendered hash, when tether applied it.
    pub hash: Option<String>,
    /// Its UID, so `down` deletes this object and never a namesake made since.
    pub uid: Option<String>,
}

/// What [`Applier::delete_owned`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// It was gone already.
    Gone,
    /// It is there but no longer the object tether made; why, in words.
    NotOurs(String),
}

/// How an object stood before it was applied, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Absent,
    /// Present and labelled with this session: made by an earlier `up` of this project.
    Ours,
    /// Present and not ours: adopted, never deleted by `down`.
    Foreign,
}

pub struct Applier {
    client: Client,
    discovered: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

impl Applier {
    pub fn new(client: Client) -> Applier {
        Applier {
            client,
            discovered: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn discover(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), ApplyError> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        if let Some(found) = self
            .discovered
            .lock()
            .ok()
            .and_then(|d| d.get(&gvk).cloned())
        {
            return Ok(found);
        }
        let found = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| ApplyError::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                message: e.to_string(),
            })?;
        if let Ok(mut d) = self.discovered.lock() {
            d.insert(gvk, found.clone());
        }
        Ok(found)
    }

    /// The API for `r`'s kind and namespace.
    pub async fn api(&self, r: &ObjectRef) -> Result<Api<DynamicObject>, ApplyError> {
        let (ar, caps) = self.discover(&r.api_version, &r.kind).await?;
        Ok(match (&caps.scope, &r.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(self.client.clone(), &ar),
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Fills in the namespace where the kind is namespaced and the object names none, then
    /// stamps labels and hash. Returns the object's reference.
    pub async fn prepare(
        &self,
        obj: &mut DynamicObject,
        default_namespace: &str,
        session: &str,
        resource: &str,
    ) -> Result<ObjectRef, ApplyError> {
        let types = obj.types.clone().unwrap_or_default();
        let (_, caps) = self.discover(&types.api_version, &types.kind).await?;
        match caps.scope {
            Scope::Namespaced => {
                obj.metadata
                    .namespace
                    .get_or_insert_with(|| default_namespace.to_owned());
            }
            Scope::Cluster => obj.metadata.namespace = None,
        }
        manifest::stamp(obj, session, resource);
        Ok(ObjectRef {
            api_version: types.api_version,
            kind: types.kind,
            namespace: obj.metadata.namespace.clone(),
            name: obj.metadata.name.clone().unwrap_or_default(),
        })
    }

    /// How `r` stands in the cluster now.
    pub async fn existing(&self, r: &ObjectRef, session: &str) -> Result<Live, ApplyError> {
        let api = self.api(r).await?;
        let live = api.get_opt(&r.name).await.map_err(|e| api_error(r, e))?;
        Ok(match live {
            None => Live {
                existing: Existing::Absent,
                hash: None,
                uid: None,
            },
            Some(live) => Live {
                existing: if session_of(&live.metadata) == Some(session) {
                    Existing::Ours
                } else {
                    Existing::Foreign
                },
                hash: manifest::hash_of(&live).map(str::to_owned),
                uid: live.metadata.uid.clone(),
            },
        })
    }

    /// Applies `obj` (already [`prepare`](Self::prepare)d) unless the live object carries
    /// the same rendered hash. Returns what it did and the object's UID after it.
    pub async fn apply(
        &self,
        r: &ObjectRef,
        obj: &DynamicObject,
        live: &Live,
    ) -> Result<(Applied, Option<String>), ApplyError> {
        let existed = live.existing != Existing::Absent;
        if existed && live.hash.is_some() && live.hash.as_deref() == manifest::hash_of(obj) {
            return Ok((Applied::Unchanged, live.uid.clone()));
        }
        let api = self.api(r).await?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = match api.patch(&r.name, &params, &Patch::Apply(obj)).await {
            Ok(applied) => applied,
            Err(kube::Error::Api(s)) if replaced_not_patched(r, live, &s) => {
                self.delete_to_replace(r, &api, live).await?;
                api.patch(&r.name, &params, &Patch::Apply(obj))
                    .await
                    .map_err(|e| api_error(r, e))?
            }
            Err(e) => return Err(api_error(r, e)),
        };
        let what = if existed {
            Applied::Configured
        } else {
            Applied::Created
        };
        Ok((what, applied.metadata.uid))
    }

    /// Deletes `r` only while it is still the object tether made: it carries this
    /// session's label and, where the record knows it, the recorded UID. The delete
    /// carries the live UID as a precondition, so an object someone re-creates between
    /// the check and the delete survives too.
    pub async fn delete_owned(
        &self,
        r: &ObjectRef,
        session: &str,
        recorded_uid: Option<&str>,
    ) -> Result<Deleted, ApplyError> {
        let api = self.api(r).await?;
        let Some(live) = api
            .get_metadata_opt(&r.name)
            .await
            .map_err(|e| api_error(r, e))?
        else {
            return Ok(Deleted::Gone);
        };
        if session_of(&live.metadata) != Some(session) {
            return Ok(Deleted::NotOurs(
                "it no longer carries this project's label (someone else made or took it)".into(),
            ));
        }
        if let Some(recorded) = recorded_uid
            && live.metadata.uid.as_deref() != Some(recorded)
        {
            return Ok(Deleted::NotOurs(
                "it was deleted and made again since tether applied it".into(),
            ));
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&r.name, &params).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Gone),
            // The UID precondition failed: a namesake replaced it after the check.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Deleted::NotOurs(
                "it was deleted and made again while tether looked at it".into(),
            )),
            Err(e) => Err(api_error(r, e)),
        }
    }

    /// Takes tether's labels and hash off an object that `down` keeps, so nothing left
    /// behind still claims to be tether's.
    pub async fn disown(&self, r: &ObjectRef) -> Result<bool, ApplyError> {
        let api = self.api(r).await?;
        let patch = serde_json::json!({
            "metadata": {
                "labels": {MANAGED_BY: null, SESSION_LABEL: null, RESOURCE_LABEL: null},
                "annotations": {HASH_ANNOTATION: null},
            }
        });
        match api
            .patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(api_error(r, e)),
        }
    }
}

impl Applier {
    /// Deletes tether's own `r` (this UID only) and waits until it is gone, so the same
    /// name can be made again.
    async fn delete_to_replace(
        &self,
        r: &ObjectRef,
        api: &Api<DynamicObject>,
        live: &Live,
    ) -> Result<(), ApplyError> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: live.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&r.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(api_error(r, e)),
        }
        let uid = live.uid.clone().unwrap_or_default();
        let gone = await_condition(api.clone(), &r.name, conditions::is_deleted(&uid));
        match tokio::time::timeout(REPLACE_WAIT, gone).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ApplyError::Api {
                object: r.clone(),
                message: format!(
                    "deleted to be replaced, but its deletion could not be watched: {e}"
                ),
            }),
            Err(_) => Err(ApplyError::Api {
                object: r.clone(),
                message: format!(
                    "deleted to be replaced, but still there after {}s",
                    REPLACE_WAIT.as_secs()
                ),
            }),
        }
    }
}

/// How long a replaced object may take to go.
const REPLACE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a refused apply means "make it again" rather than an error: a Job's pod
/// template cannot change, and a Job is run-once work, so a changed Job that tether made
/// is replaced (and runs again), as `kubectl replace --force` would. Anyone else's Job,
/// and every other refusal, stays an error.
fn replaced_not_patched(r: &ObjectRef, live: &Live, status: &kube::core::Status) -> bool {
    r.kind == "Job"
        && r.api_version == "batch/v1"
        && live.existing == Existing::Ours
        && status.code == 422
        && status.message.contains("field is immutable")
}

/// The session label on an object, if any.
fn session_of(meta: &kube::api::ObjectMeta) -> Option<&str> {
    meta.labels.as_ref()?.get(SESSION_LABEL).map(String::as_str)
}

fn api_error(r: &ObjectRef, e: kube::Error) -> ApplyError {
    let message = match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    };
    ApplyError::Api {
        object: r.clone(),
        message,
    }
}
