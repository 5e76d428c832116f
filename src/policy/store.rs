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
    stored(api.get_opt(CONFIG_MAP).await, user)
}

/// What reading the ConfigMap gave, as the policy. Pure, so each case (missing,
/// forbidden, stored, broken) is tested without a cluster.
fn stored(got: Result<Option<ConfigMap>, kube::Error>, user: &str) -> Result<Stored, PolicyError> {
    let map = match got {
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
    use std::collections::BTreeMap;

    use super::*;

    fn refused(code: u16, reason: &str, message: &str) -> Result<Option<ConfigMap>, kube::Error> {
        let status: kube::core::Status = serde_json::from_value(json!({
            "status": "Failure", "code": code, "reason": reason, "message": message,
        }))
        .unwrap();
        Err(kube::Error::Api(Box::new(status)))
    }

    fn map(key: &str, text: &str) -> Result<Option<ConfigMap>, kube::Error> {
        Ok(Some(ConfigMap {
            data: Some(BTreeMap::from([(key.to_owned(), text.to_owned())])),
            ..ConfigMap::default()
        }))
    }

    #[test]
    fn a_missing_config_map_means_no_rules() {
        let stored = stored(Ok(None), "carol").unwrap();
        assert_eq!(stored.policy, Policy::default());
        assert_eq!(stored.text, None);
    }

    #[test]
    fn a_policy_the_user_may_not_read_refuses_naming_it_and_the_user() {
        let said = "configmaps \"tether-policy\" is forbidden: User \"carol\" cannot get resource \"configmaps\"";
        let e = stored(refused(403, "Forbidden", said), "carol").unwrap_err();
        assert!(e.is_bad_input());
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "carol may not read the policy (ConfigMap tether/tether-policy), so tether cannot \
                 tell what carol may deploy: refusing to proceed ({said})"
            )),
            "{text}"
        );
        let e = stored(refused(500, "InternalError", "etcd is down"), "carol").unwrap_err();
        assert!(!e.is_bad_input(), "{e}");
    }

    #[test]
    fn a_stored_policy_is_parsed_and_a_broken_one_refuses() {
        let text = "[[rule]]\nname = \"a\"\nprofiles = [\"stage\"]\nresources = [\"*\"]\nusers = [\"alice\"]\n";
        let got = stored(map(KEY, text), "carol").unwrap();
        assert_eq!(got.policy.rules[0].users, ["alice"]);
        assert_eq!(got.text.as_deref(), Some(text));

        let e = stored(map(KEY, "[[rule]]\nname = 1\n"), "carol").unwrap_err();
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
        let e = stored(map("other", ""), "carol").unwrap_err();
        assert!(e.to_string().contains("holds no key `policy.toml`"), "{e}");
    }
}
