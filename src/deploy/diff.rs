//! The field-level difference between an object as it is live and as an apply would
//! leave it, for `tether plan`. Pure: both sides are JSON the caller fetched (the live
//! object, and the API server's answer to a dry-run apply), so the defaults the server
//! fills in are on both sides and never show as differences.
//!
//! What the server or tether keep for their own bookkeeping (managed fields, versions,
//! status, the rendered hash) is left out: it changes on every apply and says nothing
//! about what the object does.

use serde::Serialize;
use serde_json::Value;

use super::manifest::{HASH_ANNOTATION, MANAGED_BY, RESOURCE_LABEL, SESSION_LABEL};

/// Metadata the API server keeps for itself.
const SERVER_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];
/// Annotations kept by tether or the API server, not by the manifests.
const BOOKKEEPING_ANNOTATIONS: [&str; 3] = [
    HASH_ANNOTATION,
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
];
/// tether's ownership labels: the same on both sides for an object of this checkout.
const BOOKKEEPING_LABELS: [&str; 3] = [MANAGED_BY, SESSION_LABEL, RESOURCE_LABEL];

/// One changed field: its path (`spec.template.spec.containers[0].image`) and its value
/// before and after; `None` where the field is absent on that side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// The changed fields from `live` to `applied`, in path order.
pub fn diff(live: &Value, applied: &Value) -> Vec<Change> {
    let (mut live, mut applied) = (live.clone(), applied.clone());
    strip(&mut live);
    strip(&mut applied);
    let mut out = Vec::new();
    walk(String::new(), Some(&live), Some(&applied), &mut out);
    out
}

/// Takes the bookkeeping out of an object.
fn strip(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    map.remove("status");
    let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in SERVER_METADATA {
        meta.remove(key);
    }
    for (field, keys) in [
        ("annotations", &BOOKKEEPING_ANNOTATIONS[..]),
        ("labels", &BOOKKEEPING_LABELS[..]),
    ] {
        if let Some(m) = meta.get_mut(field).and_then(Value::as_object_mut) {
            for k in keys {
                m.remove(*k);
            }
            if m.is_empty() {
                meta.remove(field);
            }
        }
    }
}

fn walk(path: String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(join(&path, k), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path,
            old: a.cloned(),
            new: b.cloned(),
        }),
    }
}

/// `parent.key`, or `parent["key.with.dots"]` where a dot or bracket would mislead.
fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(replicas: i64, hash: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "dev", "uid": "u1",
                "resourceVersion": hash, "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": hash}],
                "labels": {"app": "web", SESSION_LABEL: "s", MANAGED_BY: "tether"},
                "annotations": {HASH_ANNOTATION: hash, "deployment.kubernetes.io/revision": hash},
            },
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "web", "image": "web:1", "imagePullPolicy": "IfNotPresent"}
            ]}}},
            "status": {"replicas": 1, "observedGeneration": hash},
        })
    }

    #[test]
    fn only_the_changed_field_shows_not_the_bookkeeping() {
        let changes = diff(&deployment(1, "a"), &deployment(2, "b"));
        assert_eq!(
            changes,
            [Change {
                path: "spec.replicas".into(),
                old: Some(json!(1)),
                new: Some(json!(2)),
            }]
        );
        assert_eq!(diff(&deployment(1, "a"), &deployment(1, "b")), []);
    }

    #[test]
    fn added_removed_and_listed_fields_have_their_paths() {
        let old = json!({"spec": {"containers": [{"name": "web", "env": [{"name": "A", "value": "1"}]}]},
                          "metadata": {"annotations": {"team.example/owner": "x"}}});
        let new = json!({"spec": {"containers": [{"name": "web", "env": [{"name": "A", "value": "2"},
                                                                   {"name": "B", "value": "3"}]}]},
                          "metadata": {}});
        let changes = diff(&old, &new);
        let paths: Vec<_> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.annotations",
                "spec.containers[0].env[0].value",
                "spec.containers[0].env[1]",
            ]
        );
        assert_eq!(changes[0].new, None, "gone on the new side");
        assert_eq!(changes[2].old, None, "absent on the old side");
        assert_eq!(changes[2].new, Some(json!({"name": "B", "value": "3"})));
    }

    #[test]
    fn a_key_with_dots_is_quoted() {
        let changes = diff(
            &json!({"metadata": {"labels": {"app.kubernetes.io/name": "a"}}}),
            &json!({"metadata": {"labels": {"app.kubernetes.io/name": "b"}}}),
        );
        assert_eq!(
            changes[0].path,
            r#"metadata.labels["app.kubernetes.io/name"]"#
        );
    }
}
