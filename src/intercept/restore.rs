//! Restoring after an intercept: the Service's one targetPort back and tether's
//! annotations off, then the agent out of every Deployment carrying it for that Service,
//! then the attach Secret nothing uses any more. Each change is a JSON patch of tether's
//! own changes only (see `patch`), so what others changed during the intercept stays.
//! Used by `leave`, Ctrl-C, `uninstall` and a failed install.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{Api, Client, ResourceExt, api::ListParams};

use super::{
    InterceptError,
    error::kube_err,
    patch,
    raw::Raw,
    secret,
    spec::{self, FOR_SERVICE},
};

/// What `restore` put back.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    /// Whether the Service carried tether's changes.
    pub service: bool,
    /// The Deployments the agent was removed from.
    pub deployments: Vec<String>,
    /// The attach Secrets deleted.
    pub secrets: Vec<String>,
}

impl Restored {
    pub fn is_empty(&self) -> bool {
        !self.service && self.deployments.is_empty()
    }
}

/// Undoes tether's changes for `service` in `namespace`.
pub async fn restore(
    client: &Client,
    namespace: &str,
    service: &str,
) -> Result<Restored, InterceptError> {
    let services = Raw::new::<Service>(client, namespace);
    let deployments = Raw::new::<Deployment>(client, namespace);
    let mut done = Restored::default();
    // The record names the Deployment, also one whose agent someone else removed.
    let record = services
        .get(service)
        .await?
        .and_then(|live| patch::record_of(&live));
    done.service = services
        .patch(service, |live| {
            Ok(patch::restore_service(
                live,
                patch::record_of(live).as_ref(),
            ))
        })
        .await?;
    let carrying: Vec<String> = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing Deployments"))?
        .items
        .into_iter()
        .filter(|d| spec::annotation(&d.metadata.annotations, FOR_SERVICE) == Some(service))
        .map(|d| d.name_any())
        .collect();
    for name in &carrying {
        let changed = deployments
            .patch(name, |live| {
                Ok(if patch::for_service(live) == Some(service) {
                    patch::restore_deployment(live)
                } else {
                    None
                })
            })
            .await?;
        if changed {
            done.deployments.push(name.clone());
        }
    }
    let mut owners = carrying;
    owners.extend(record.map(|r| r.deployment));
    owners.sort();
    owners.dedup();
    for name in owners {
        let still_used = deployments
            .get(&name)
            .await?
            .is_some_and(|live| patch::has_agent(&live));
        if !still_used && secret::delete(client, namespace, &name).await? {
            done.secrets.push(patch::secret_name(&name));
        }
    }
    Ok(done)
}

/// Deletes the attach Secrets (in `namespace`, or everywhere) whose Deployment no longer
/// carries the agent: what a crash between creating the Secret and adding the agent
/// leaves. Returns `namespace/name` of each one deleted.
pub async fn orphan_secrets(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<String>, InterceptError> {
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let lp = ListParams::default().labels(&format!(
        "{}={},{}",
        secret::MANAGED_BY.0,
        secret::MANAGED_BY.1,
        secret::ATTACH_FOR
    ));
    let mut deleted = Vec::new();
    for s in api
        .list(&lp)
        .await
        .map_err(kube_err("listing tether's attach Secrets"))?
        .items
    {
        let ns = s.namespace().unwrap_or_default();
        let Some(deployment) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(secret::ATTACH_FOR))
        else {
            continue;
        };
        let carries = Raw::new::<Deployment>(client, &ns)
            .get(deployment)
            .await?
            .is_some_and(|live| patch::has_agent(&live));
        if !carries && secret::delete(client, &ns, deployment).await? {
            deleted.push(format!("{ns}/{}", s.name_any()));
        }
    }
    Ok(deleted)
}
