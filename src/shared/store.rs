//! The record of one shared instance in the cluster: ConfigMap `tether-shared-RESOURCE`
//! in the instance's namespace. It is made with `create`, so of two runs racing to make
//! it exactly one succeeds and the other (told 409) reads it again and joins; every
//! change after is a replace on the resourceVersion read, retried from a fresh read on a
//! conflict, so no consumer is ever lost to a concurrent join or leave.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams, Preconditions},
};

use super::{
    SharedError,
    decide::{self, Join, Joined, Left},
    record::{Consumer, Instance, Part, config_map_name},
};
use crate::deploy::{
    ObjectRef,
    manifest::{MANAGED_BY, RESOURCE_LABEL},
};

/// Conflicting writes tolerated before giving up: each means another consumer wrote in
/// between, which a handful of people sharing an instance never do ten times running.
const TRIES: usize = 10;

pub struct Store {
    api: Api<ConfigMap>,
    client: Client,
    resource: String,
    namespace: String,
    name: String,
}

impl Store {
    pub fn new(client: Client, namespace: &str, resource: &str) -> Store {
        Store {
            api: Api::namespaced(client.clone(), namespace),
            client,
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: config_map_name(resource),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The instance as the cluster has it now, if there is one.
    pub async fn read(&self) -> Result<Option<Instance>, SharedError> {
        Ok(self.read_versioned().await?.map(|(i, _)| i))
    }

    /// Joins `me` to the instance of rendering `parts`, making it when there is none.
    /// Returns what happened and the instance as written; a refusal is an error.
    pub async fn join(
        &self,
        me: &Consumer,
        parts: &[Part],
    ) -> Result<(Joined, Instance), SharedError> {
        self.ensure_namespace().await?;
        for _ in 0..TRIES {
            let read = self.read_versioned().await?;
            let existing = read.as_ref().map(|(i, _)| i);
            match decide::join(existing, me, parts) {
                Join::Reuse => {
                    if let Some((i, _)) = read {
                        return Ok((Joined::Reused, i));
                    }
                }
                Join::Refuse(difference) => {
                    let (owner, consumers) = existing
                        .map(|i| (i.owner.clone(), i.consumers_in_words()))
                        .unwrap_or_default();
                    return Err(SharedError::Refused {
                        resource: self.resource.clone(),
                        namespace: self.namespace.clone(),
                        owner,
                        consumers,
                        difference,
                    });
                }
                Join::Write(next, joined) => {
                    let version = read.and_then(|(_, v)| v);
                    if self.write(&next, version).await? {
                        return Ok((joined, next));
                    }
                }
            }
        }
        Err(self.contended())
    }

    /// Notes the UIDs the cluster gave the instance's objects, for the last one out.
    pub async fn note_uids(&self, uids: &BTreeMap<ObjectRef, String>) -> Result<(), SharedError> {
        for _ in 0..TRIES {
            let Some((mut inst, version)) = self.read_versioned().await? else {
                return Ok(());
            };
            let mut changed = false;
            for p in &mut inst.parts {
                if let Some(uid) = uids.get(&p.object)
                    && p.uid.as_ref() != Some(uid)
                {
                    p.uid = Some(uid.clone());
                    changed = true;
                }
            }
            if !changed || self.write(&inst, version).await? {
                return Ok(());
            }
        }
        Err(self.contended())
    }

    /// Takes `me` off the consumers. The last one out deletes the record (on the
    /// resourceVersion read, so a consumer joining meanwhile keeps it) and gets back
    /// the objects to delete. `None`: there is no instance.
    pub async fn leave(&self, me: &Consumer) -> Result<Option<Left>, SharedError> {
        for _ in 0..TRIES {
            let Some((inst, version)) = self.read_versioned().await? else {
                return Ok(None);
            };
            let left = decide::leave(&inst, me);
            let done = match &left {
                Left::Remain(next) if next == &inst => true,
                Left::Remain(next) => self.write(next, version).await?,
                Left::Last(_) => self.delete(version).await?,
            };
            if done {
                return Ok(Some(left));
            }
        }
        Err(self.contended())
    }

    async fn read_versioned(&self) -> Result<Option<(Instance, Option<String>)>, SharedError> {
        let Some(cm) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.api_error("read", e))?
        else {
            return Ok(None);
        };
        let data = cm.data.unwrap_or_default();
        let inst = Instance::decode(&data).map_err(|source| SharedError::Record {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            source,
        })?;
        Ok(Some((inst, cm.metadata.resource_version)))
    }

    /// Creates (`version` None) or replaces the record; `false` when someone else wrote
    /// first (a 409), to be decided again from a fresh read.
    async fn write(&self, inst: &Instance, version: Option<String>) -> Result<bool, SharedError> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                resource_version: version.clone(),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.to_owned(), "tether".to_owned()),
                    (RESOURCE_LABEL.to_owned(), self.resource.clone()),
                ])),
                ..ObjectMeta::default()
            },
            data: Some(inst.encode()),
            ..ConfigMap::default()
        };
        let pp = PostParams::default();
        let result = match version {
            None => self.api.create(&pp, &cm).await.map(drop),
            Some(_) => self.api.replace(&self.name, &pp, &cm).await.map(drop),
        };
        match result {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.api_error("write", e)),
        }
    }

    async fn delete(&self, version: Option<String>) -> Result<bool, SharedError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: None,
                resource_version: version,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&self.name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.api_error("delete", e)),
        }
    }

    /// The instance's namespace, made when missing and never labelled tether's: it
    /// stays when the instance goes, as other work may live there.
    async fn ensure_namespace(&self) -> Result<(), SharedError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.get_opt(&self.namespace).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            // Someone may use a namespace without being allowed to read it: try on.
            Err(kube::Error::Api(s)) if s.code == 403 => return Ok(()),
            Err(e) => return Err(self.api_error("read the namespace of", e)),
        }
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.api_error("make the namespace of", e)),
        }
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> SharedError {
        SharedError::Api {
            action,
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            source,
        }
    }

    fn contended(&self) -> SharedError {
        SharedError::Contended {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            tries: TRIES,
        }
    }
}
