//! A profile's `set` written into a resource's rendered objects, before they are stamped,
//! so the rendered hash (and with it `up`'s "configured" and `tether plan`) covers them.
//!
//! A count set by hand (`tether scale`) is written later, over this one: it stands until
//! `tether.toml` changes, as it does over the manifests' own count.

use serde_json::{Map, Value, json};

use super::manifest::pod_spec_mut;
use crate::config::Overrides;

/// The kinds whose `spec.replicas` a profile's `replicas` sets.
const SCALED: [&str; 2] = ["Deployment", "StatefulSet"];

/// Writes `overrides` into one object of `kind` (`data`: all but its type and metadata):
/// replicas into Deployments and StatefulSets, memory, cpu and env into every container
/// of its pod template (init containers run once to completion, and keep what their
/// manifests say).
pub fn apply(overrides: &Overrides, kind: &str, obj: &mut Value) {
    if let Some(n) = overrides.replicas
        && SCALED.contains(&kind)
        && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("replicas".into(), n.into());
    }
    let Some(containers) = pod_spec_mut(obj)
        .and_then(|s| s.get_mut("containers"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in containers.iter_mut().filter_map(Value::as_object_mut) {
        for (key, quantity) in [("memory", &overrides.memory), ("cpu", &overrides.cpu)] {
            if let Some(q) = quantity {
                let resources = object_at(c, "resources");
                for bound in ["requests", "limits"] {
                    object_at(resources, bound).insert(key.into(), q.clone().into());
                }
            }
        }
        if !overrides.env.is_empty() {
            set_env(c, overrides);
        }
    }
}

/// Sets each variable, in place of an entry of the same name (whose `valueFrom` goes
/// with it), else at the end.
fn set_env(container: &mut Map<String, Value>, overrides: &Overrides) {
    let env = container
        .entry("env")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !env.is_array() {
        *env = Value::Array(Vec::new());
    }
    let Some(list) = env.as_array_mut() else {
        return;
    };
    for (name, value) in &overrides.env {
        let entry = json!({ "name": name, "value": value });
        match list
            .iter_mut()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
        {
            Some(e) => *e = entry,
            None => list.push(entry),
        }
    }
}

/// The object under `key`, made one when it is missing or not an object.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("made an object just above"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn deployment() -> Value {
        json!({
            "spec": {"replicas": 1, "template": {"spec": {
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [
                    {"name": "web", "image": "web",
                     "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                             {"name": "KEEP", "value": "1"}],
                     "resources": {"limits": {"cpu": "1"}}},
                    {"name": "side", "image": "busybox"}
                ]
            }}}
        })
    }

    fn all() -> Overrides {
        Overrides {
            replicas: Some(3),
            memory: Some("512Mi".into()),
            cpu: Some("500m".into()),
            env: BTreeMap::from([("MODE".into(), "dev".into()), ("NEW".into(), "x".into())]),
            helm: BTreeMap::new(),
        }
    }

    #[test]
    fn replicas_resources_and_env_reach_every_container() {
        let mut d = deployment();
        apply(&all(), "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 3);
        let containers = &d["spec"]["template"]["spec"]["containers"];
        for c in containers.as_array().unwrap() {
            assert_eq!(
                c["resources"],
                json!({"requests": {"memory": "512Mi", "cpu": "500m"},
                       "limits": {"memory": "512Mi", "cpu": "500m"}}),
                "{c}"
            );
        }
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "MODE", "value": "dev"}, {"name": "KEEP", "value": "1"},
                   {"name": "NEW", "value": "x"}]),
            "a same-named entry is replaced, valueFrom and all; a new one is added"
        );
        assert_eq!(
            containers[1]["env"],
            json!([{"name": "MODE", "value": "dev"}, {"name": "NEW", "value": "x"}])
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["initContainers"][0],
            json!({"name": "init", "image": "busybox"}),
            "init containers keep their manifests' values"
        );
        let once = d.clone();
        apply(&all(), "Deployment", &mut d);
        assert_eq!(d, once, "applying twice changes nothing more");
    }

    #[test]
    fn replicas_go_to_deployments_and_statefulsets_only() {
        let only = Overrides {
            replicas: Some(2),
            ..Overrides::default()
        };
        let mut set = json!({"spec": {"template": {"spec": {"containers": []}}}});
        apply(&only, "StatefulSet", &mut set);
        assert_eq!(set["spec"]["replicas"], 2);
        let mut job = json!({"spec": {"template": {"spec": {"containers": []}}}});
        apply(&only, "Job", &mut job);
        assert_eq!(job["spec"].get("replicas"), None);
        let mut service = json!({"spec": {"ports": []}});
        let before = service.clone();
        apply(&all(), "Service", &mut service);
        assert_eq!(service, before, "an object without pods is left alone");
    }

    #[test]
    fn nothing_set_changes_nothing() {
        let mut d = deployment();
        apply(&Overrides::default(), "Deployment", &mut d);
        assert_eq!(d, deployment());
    }
}
