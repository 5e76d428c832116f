//! What applying a resource's rendered objects would do, found without changing anything
//! (`tether plan`): an object that is absent would be created; one whose rendered hash
//! is the live one is unchanged, as `up` skips it; any other is changed, and the fields
//! it changes are those between the live object and the API server's answer to a
//! dry-run apply of it, so defaults the server fills in never show as differences.

use kube::api::{Patch, PatchParams};
use serde_json::Value;

use super::{
    ApplyError, DeployError, Deployer, ObjectRef, Rendered,
    apply::FIELD_MANAGER,
    diff::{self, Change},
    manifest,
    record::Entry,
};

/// What an apply would do to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Created,
    /// `up` would send it; these fields would change (none: only tether's bookkeeping,
    /// such as the rendered hash of an object an older tether stamped).
    Changed(Vec<Change>),
    Unchanged,
}

impl Deployer {
    /// What applying `rendered` would do, object by object, in apply order.
    pub async fn preview(
        &self,
        rendered: &Rendered,
    ) -> Result<Vec<(ObjectRef, Delta)>, DeployError> {
        let mut out = Vec::new();
        for (r, obj) in &rendered.objects {
            let api = self.applier().api(r).await?;
            let failed = |e: kube::Error| ApplyError::Api {
                object: r.clone(),
                message: match e {
                    kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
                    other => other.to_string(),
                },
            };
            let Some(live) = api.get_opt(&r.name).await.map_err(failed)? else {
                out.push((r.clone(), Delta::Created));
                continue;
            };
            if manifest::hash_of(&live).is_some()
                && manifest::hash_of(&live) == manifest::hash_of(obj)
            {
                out.push((r.clone(), Delta::Unchanged));
                continue;
            }
            let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
            let answer = api
                .patch(&r.name, &params, &Patch::Apply(obj))
                .await
                .map_err(failed)?;
            let as_json = |o| serde_json::to_value(o).unwrap_or(Value::Null);
            let changes = diff::diff(&as_json(&live), &as_json(&answer));
            out.push((r.clone(), Delta::Changed(changes)));
        }
        Ok(out)
    }

    /// The objects this checkout's record holds for the cluster: what `down` would delete
    /// (those it created) and what it adopted.
    pub fn recorded(&self) -> Vec<Entry> {
        self.record_entries()
    }
}
