//! Reading a Service or Deployment as raw JSON and sending a JSON patch computed from it,
//! again from a fresh read when the object changed in between (the patch's `test`
//! operations failed or the API server saw a conflict). Nothing is ever written back
//! whole, so fields this tether's types do not know stay as they are.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    core::Resource,
};
use serde_json::Value;

use super::{InterceptError, error::kube_err};

/// How often a patch is computed afresh before tether gives up.
const ATTEMPTS: usize = 5;

/// Raw access to the objects of one kind in one namespace.
pub struct Raw {
    api: Api<DynamicObject>,
    kind: &'static str,
}

impl Raw {
    pub fn new<K>(client: &Client, namespace: &str) -> Raw
    where
        K: Resource<DynamicType = ()>,
    {
        let resource = ApiResource::erase::<K>(&());
        Raw {
            kind: match resource.kind.as_str() {
                "Service" => "Service",
                "Deployment" => "Deployment",
                _ => "object",
            },
            api: Api::namespaced_with(client.clone(), namespace, &resource),
        }
    }

    /// The object as JSON, or `None` when there is none.
    pub async fn get(&self, name: &str) -> Result<Option<Value>, InterceptError> {
        let object = self
            .api
            .get_opt(name)
            .await
            .map_err(kube_err(format!("reading {} {name}", self.kind)))?;
        object
            .map(|o| {
                serde_json::to_value(o).map_err(|source| InterceptError::Record {
                    what: format!("{} {name}", self.kind),
                    source,
                })
            })
            .transpose()
    }

    /// Reads the object, asks `change` for the operations, and sends them. `Ok(false)`
    /// when the object is gone or `change` has nothing to do.
    pub async fn patch(
        &self,
        name: &str,
        change: impl Fn(&Value) -> Result<Option<Vec<Value>>, InterceptError>,
    ) -> Result<bool, InterceptError> {
        for _ in 0..ATTEMPTS {
            let Some(live) = self.get(name).await? else {
                return Ok(false);
            };
            let Some(ops) = change(&live)? else {
                return Ok(false);
            };
            let patch: json_patch::Patch =
                serde_json::from_value(Value::Array(ops)).map_err(|source| {
                    InterceptError::Record {
                        what: format!("the patch of {} {name}", self.kind),
                        source,
                    }
                })?;
            match self
                .api
                .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
            {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(s)) if s.is_conflict() || is_failed_test(&s) => continue,
                Err(e) => {
                    return Err(kube_err(format!("updating {} {name}", self.kind))(e));
                }
            }
        }
        Err(InterceptError::KeptChanging(format!(
            "{} {name}",
            self.kind
        )))
    }
}

/// The API server answers a failed `test` operation of a JSON patch with a 422 of this
/// generic message (seen on v1.33); an object the patch makes invalid gets a 422 naming
/// the object instead, which is reported, not retried.
fn is_failed_test(s: &kube::core::Status) -> bool {
    s.code == 422
        && s.message
            .contains("rejected our request due to an error in our request")
}
