//! The per-Deployment attach Secret: a random token that the agent gets through a
//! `secretKeyRef` (never as a value in the spec or an annotation) and the laptop sends in
//! its Hello. Only someone allowed to read Secrets in the namespace can attach. Created
//! (or reused) by install, read by every laptop that attaches, deleted by restore once
//! the Deployment no longer carries the agent.

use std::{collections::BTreeMap, io::Read as _};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams, Preconditions},
};

use super::{
    InterceptError,
    error::kube_err,
    patch::{TOKEN_KEY, secret_name},
};

/// The label that marks objects tether created.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tether");
/// The label naming the Deployment a Secret is the attach token of.
pub const ATTACH_FOR: &str = "tether.dev/attach-for";

fn is_ours(s: &Secret) -> bool {
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// The token a tether Secret holds under [`TOKEN_KEY`], if it holds one.
pub fn token_of(s: &Secret) -> Option<String> {
    let bytes = s.data.as_ref()?.get(TOKEN_KEY)?;
    let token = String::from_utf8(bytes.0.clone()).ok()?;
    (!token.is_empty()).then_some(token)
}

/// 32 random bytes from the kernel, as hex: every token tether hands out.
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(hex::encode(bytes))
}

/// The Deployment's attach token: the existing Secret's, else a new one.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    deployment: &str,
) -> Result<String, InterceptError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = secret_name(deployment);
    if let Some(token) = read(client, namespace, deployment).await? {
        return Ok(token);
    }
    let token = random_token().map_err(InterceptError::Random)?;
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                (ATTACH_FOR.to_owned(), deployment.to_owned()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_owned(),
            ByteString(token.clone().into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(token),
        // Another laptop created it in between: use theirs.
        Err(kube::Error::Api(s)) if s.code == 409 => read(client, namespace, deployment)
            .await?
            .ok_or(InterceptError::SecretNotOurs(name)),
        Err(e) => Err(kube_err(format!("creating Secret {name}"))(e)),
    }
}

/// The token of the Deployment's attach Secret, if there is one of tether's.
pub async fn read(
    client: &Client,
    namespace: &str,
    deployment: &str,
) -> Result<Option<String>, InterceptError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = secret_name(deployment);
    match api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {name}")))?
    {
        None => Ok(None),
        Some(s) if !is_ours(&s) => Err(InterceptError::SecretNotOurs(name)),
        Some(s) => Ok(token_of(&s)),
    }
}

/// Deletes the Deployment's attach Secret when it is tether's; whether it did.
pub async fn delete(
    client: &Client,
    namespace: &str,
    deployment: &str,
) -> Result<bool, InterceptError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = secret_name(deployment);
    let Some(s) = api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {name}")))?
    else {
        return Ok(false);
    };
    if !is_ours(&s) {
        return Ok(false);
    }
    // Only the Secret that was read: one re-created meanwhile is someone else's.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: s.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(kube_err(format!("deleting Secret {name}"))(e)),
    }
}
