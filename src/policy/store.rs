//! The policy in the cluster: ConfigMap `tether-policy` in tether's namespace, key
//! `policy.toml`, the file's text as the admin wrote it (so `policy show` gives back
//! comments and order). Every user may read it and only admins may write it; the
//! cluster enforces that (RBAC and an admission policy), not tether.
//!
//! Reading fails closed: a missing ConfigMap means no rules, but one this user may not
//! read, or one that does not parse, refuses, since tether cannot tell what it allows.

use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::{error::PolicyError, file::parse, rule::Policy};
use crate::connect::install::NAMESPACE;

/// The ConfigMap that holds the policy, in [`NAMESPACE`].
pub const CONFIG_MAP: &str = "tether-policy";
/// Its one key: the policy file's text.
pub const KEY: &str = "policy.toml";
/// The label on the namespace while it holds a policy: the cluster's admission policy
/// lets only admins delete a namespace so labelled (deleting it would delete the rules),
/// and `tether uninstall --connect` keeps it.
pub const HOLDS_POLICY: &str = "tether.dev/holds-policy";
/// The field manager of tether's writes of the policy.
const MANAGER: &str = "tether-policy";

/// The cluster's policy, and its text when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub policy: Policy,
    /// `None`: there is no ConfigMap, so no rules.
    pub text: Option<String>,
}

/// Reads the policy as `user` (named when the cluster refuses).
pub async fn read(client: &Client, user: &str) -> Result<Stored, PolicyError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let map = match api.get_opt(CONFIG_MAP).await {
        Ok(map) => map,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Err(PolicyError::Unreadable {
                user: user.to_owned(),
                namespace: NAMESPACE,
                name: CONFIG_MAP,
                said: s.message,
            });
        }
        Err(source) => {
            return Err(PolicyError::ReadStored {
                namespace: NAMESPACE,
                name: CONFIG_MAP,
                source,
            });
        }
    };
    let Some(map) = map else {
        return Ok(Stored {
            policy: Policy::default(),
            text: None,
        });
    };
    let text = map
        .data
        .and_then(|mut d| d.remove(KEY))
        .ok_or(PolicyError::StoredNoKey {
            namespace: NAMESPACE,
            name: CONFIG_MAP,
            key: KEY,
        })?;
    let policy = parse(Path::new(KEY), &text).map_err(|e| PolicyError::StoredInvalid {
        namespace: NAMESPACE,
        name: CONFIG_MAP,
        source: Box::new(e),
    })?;
    Ok(Stored {
        policy,
        text: Some(text),
    })
}

/// Writes `text` (already validated) as the policy, as `user`. The ConfigMap is tried
/// first without effect (a dry run passes admission too), so a user the cluster refuses
/// changes nothing, not even the namespace's label.
pub async fn write(client: &Client, user: &str, text: &str) -> Result<(), PolicyError> {
    let what = format!("ConfigMap {NAMESPACE}/{CONFIG_MAP}");
    let fail = |what: String| {
        move |source: kube::Error| match source {
            kube::Error::Api(s) if s.code == 403 => PolicyError::WriteDenied {
                user: user.to_owned(),
                what,
                said: s.message,
            },
            source => PolicyError::Write { what, source },
        }
    };
    let map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
        "data": {KEY: text},
    });
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let apply = PatchParams::apply(MANAGER).force();
    let mut dry = apply.clone();
    dry.dry_run = true;
    match maps.patch(CONFIG_MAP, &dry, &Patch::Apply(&map)).await {
        // No namespace yet: nothing to try against; it is made below.
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        other => {
            other.map_err(fail(what.clone()))?;
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {HOLDS_POLICY: "true"}},
    });
    namespaces
        .patch(NAMESPACE, &apply, &Patch::Apply(&ns))
        .await
        .map_err(fail(format!("Namespace {NAMESPACE}")))?;
    maps.patch(CONFIG_MAP, &apply, &Patch::Apply(&map))
        .await
        .map_err(fail(what))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;

    /// A client whose API server answers every request with `code` and `body`.
    fn answering(code: u16, body: serde_json::Value) -> Client {
        let service = tower::service_fn(move |_: http::Request<kube::client::Body>| {
            let body = Bytes::from(body.to_string());
            async move {
                http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Full::new(body))
            }
        });
        Client::new(service, "default")
    }

    fn status(code: u16, reason: &str, message: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
               "code": code, "reason": reason, "message": message})
    }

    fn map(data: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE}, "data": data})
    }

    #[tokio::test]
    async fn a_missing_config_map_means_no_rules() {
        let c = answering(
            404,
            status(404, "NotFound", "configmaps \"tether-policy\" not found"),
        );
        let stored = read(&c, "carol").await.unwrap();
        assert_eq!(stored.policy, Policy::default());
        assert_eq!(stored.text, None);
    }

    #[tokio::test]
    async fn a_policy_the_user_may_not_read_refuses_naming_it_and_the_user() {
        let said = "configmaps \"tether-policy\" is forbidden: User \"carol\" cannot get resource \"configmaps\"";
        let e = read(&answering(403, status(403, "Forbidden", said)), "carol")
            .await
            .unwrap_err();
        assert!(e.is_bad_input());
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "carol may not read the policy (ConfigMap tether/tether-policy), so tether cannot \
                 tell what carol may deploy: refusing to proceed ({said})"
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_stored_policy_is_parsed_and_a_broken_one_refuses() {
        let text = "[[rule]]\nname = \"a\"\nprofiles = [\"stage\"]\nresources = [\"*\"]\nusers = [\"alice\"]\n";
        let stored = read(&answering(200, map(json!({KEY: text}))), "carol")
            .await
            .unwrap();
        assert_eq!(stored.policy.rules[0].users, ["alice"]);
        assert_eq!(stored.text.as_deref(), Some(text));

        let e = read(
            &answering(200, map(json!({KEY: "[[rule]]\nname = 1\n"}))),
            "carol",
        )
        .await
        .unwrap_err();
        assert!(
            !e.is_bad_input(),
            "the cluster's policy is not this user's input"
        );
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert!(
            chain.starts_with("the policy in ConfigMap tether/tether-policy is not valid")
                && chain.contains(": policy.toml:2:8: "),
            "{chain}"
        );
        let e = read(&answering(200, map(json!({"other": ""}))), "carol")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("holds no key `policy.toml`"), "{e}");
    }
}
