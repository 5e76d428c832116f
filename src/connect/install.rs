//! The connect agent in the cluster: namespace `tether` (labelled for the `restricted` Pod
//! Security level), a ServiceAccount with no token mounted and no rights, the attach
//! Secret, and a one-replica Deployment running `tether-agent connect`. Applied with
//! server-side apply (field manager `tether`), so a second `connect` changes nothing and
//! a newer tether replaces the image. `uninstall` deletes exactly these, by name and label.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
    runtime::wait::{await_condition, conditions},
};
use serde_json::json;

use super::error::{ConnectError, kube_err};
use crate::intercept::{
    patch::{TOKEN_ENV, TOKEN_KEY, restricted_security_context, secret_name},
    secret::{self, MANAGED_BY},
};

/// tether's own namespace, which holds the connect agent.
pub const NAMESPACE: &str = "tether";
/// The Deployment and ServiceAccount of the connect agent.
pub const NAME: &str = "tether-connect";
/// The label that selects the agent's pods.
pub const SELECTOR: &str = "app.kubernetes.io/name=tether-connect";
/// The agent's control port, on its pod's loopback.
pub const CONTROL_PORT: u16 = 9901;
/// How long the first `connect` waits for the agent's rollout.
pub const READY_LIMIT: Duration = Duration::from_secs(120);

/// Applies the agent's objects with `image`; returns the attach token.
pub async fn ensure(client: &Client, image: &str) -> Result<String, ConnectError> {
    let apply = PatchParams::apply("tether").force();
    let labels = json!({
        MANAGED_BY.0: MANAGED_BY.1,
        "app.kubernetes.io/name": NAME,
    });
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {
            MANAGED_BY.0: MANAGED_BY.1,
            "pod-security.kubernetes.io/enforce": "restricted",
        }},
    });
    namespaces
        .patch(NAMESPACE, &apply, &Patch::Apply(&ns))
        .await
        .map_err(kube_err(format!("applying Namespace {NAMESPACE}")))?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let sa = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": NAME, "labels": labels},
        "automountServiceAccountToken": false,
    });
    accounts
        .patch(NAME, &apply, &Patch::Apply(&sa))
        .await
        .map_err(kube_err(format!(
            "applying ServiceAccount {NAMESPACE}/{NAME}"
        )))?;
    let token = secret::ensure(client, NAMESPACE, NAME)
        .await
        .map_err(ConnectError::Agent)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    deployments
        .patch(NAME, &apply, &Patch::Apply(&deployment(image, &labels)))
        .await
        .map_err(kube_err(format!("applying Deployment {NAMESPACE}/{NAME}")))?;
    let rolled = tokio::time::timeout(
        READY_LIMIT,
        await_condition(
            deployments.clone(),
            NAME,
            conditions::is_deployment_completed(),
        ),
    )
    .await;
    match rolled {
        Ok(Ok(_)) => Ok(token),
        Ok(Err(e)) => Err(ConnectError::NotReady(
            READY_LIMIT.as_secs(),
            format!("watching its rollout failed: {e}"),
        )),
        Err(_) => Err(ConnectError::NotReady(
            READY_LIMIT.as_secs(),
            format!("`kubectl -n {NAMESPACE} describe deployment {NAME}` says why"),
        )),
    }
}

/// The Deployment: one replica, the restricted container, no service links or API token.
fn deployment(image: &str, labels: &serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "containers": [{
                        "name": "agent",
                        "image": image,
                        "args": ["connect", "--control", CONTROL_PORT.to_string()],
                        "env": [
                            {"name": "TETHER_LOG", "value": "info"},
                            {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
                                "name": secret_name(NAME), "key": TOKEN_KEY,
                            }}},
                        ],
                        "resources": {
                            "requests": {"cpu": "10m", "memory": "16Mi"},
                            "limits": {"memory": "64Mi"},
                        },
                        "securityContext": restricted_security_context(),
                    }],
                },
            },
        },
    })
}

/// Reads the attach token of an installed agent, if there is one.
pub async fn token(client: &Client) -> Result<Option<String>, ConnectError> {
    secret::read(client, NAMESPACE, NAME)
        .await
        .map_err(ConnectError::Agent)
}

/// Deletes the agent's objects; returns what was deleted, for the report. The namespace
/// goes too when it carries tether's label: it is tether's own, made for the agent.
pub async fn remove(client: &Client) -> Result<Vec<String>, ConnectError> {
    let mut gone = Vec::new();
    let dp = DeleteParams::foreground();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    if deleted(deployments.delete(NAME, &dp).await)? {
        gone.push(format!("Deployment {NAMESPACE}/{NAME}"));
    }
    if secret::delete(client, NAMESPACE, NAME)
        .await
        .map_err(ConnectError::Agent)?
    {
        gone.push(format!("Secret {NAMESPACE}/{}", secret_name(NAME)));
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    if deleted(accounts.delete(NAME, &DeleteParams::default()).await)? {
        gone.push(format!("ServiceAccount {NAMESPACE}/{NAME}"));
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // A namespace that holds the policy stays: deleting it would delete the rules.
    let ours = namespaces
        .get_opt(NAMESPACE)
        .await
        .map_err(kube_err(format!("reading Namespace {NAMESPACE}")))?
        .is_some_and(|n| {
            n.metadata.labels.is_some_and(|l| {
                l.get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1)
                    && !l.contains_key(crate::policy::HOLDS_POLICY)
            })
        });
    if ours && deleted(namespaces.delete(NAMESPACE, &DeleteParams::default()).await)? {
        gone.push(format!("Namespace {NAMESPACE}"));
    }
    Ok(gone)
}

/// Whether a delete removed something: a 404 means it was not there.
fn deleted<T>(result: Result<T, kube::Error>) -> Result<bool, ConnectError> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(ConnectError::Kube("deleting the connect agent".into(), e)),
    }
}
