//! tether's changes to the Service and the Deployment as JSON patches (RFC 6902),
//! computed from the live object's raw JSON: install adds the agent container, the
//! intercepted ports' targetPorts and tether's annotations; restore removes exactly those
//! and puts back the recorded targetPorts. Nothing else of the object is read back or written, so what
//! others changed meanwhile (an image, the replicas, env, fields this tether's types do
//! not know) survives. Each patch starts with `test` operations on what it relies on, so
//! a concurrent change makes the API server refuse it and the caller reads again.
//! Pure functions; the caller (install, restore) reads the object and sends the patch.

use serde_json::{Value, json};

use super::{
    InterceptError,
    spec::{AGENT_CONTAINER, FOR_SERVICE, INTERCEPT, Installed, LEGACY_ORIGINAL_SPEC},
};

/// Kubernetes' limit on the total size of an object's annotations (keys and values).
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;

const CONTAINERS: &str = "/spec/template/spec/containers";

/// A JSON pointer to an annotation (`/` in keys escaped as RFC 6901 says).
fn annotation_path(key: &str) -> String {
    format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

/// The operations that set `adds` as annotations, creating the map when there is none.
fn set_annotations(live: &Value, adds: &[(&str, String)]) -> Vec<Value> {
    match live.pointer("/metadata/annotations") {
        Some(Value::Object(_)) => adds
            .iter()
            .map(|(k, v)| json!({"op": "add", "path": annotation_path(k), "value": v}))
            .collect(),
        _ => {
            let map: serde_json::Map<String, Value> = adds
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
                .collect();
            vec![json!({"op": "add", "path": "/metadata/annotations", "value": map})]
        }
    }
}

/// The operations that remove those of `keys` the object carries.
fn remove_annotations(live: &Value, keys: &[&str]) -> Vec<Value> {
    keys.iter()
        .filter(|k| {
            live.pointer("/metadata/annotations")
                .and_then(|a| a.get(**k))
                .is_some()
        })
        .map(|k| json!({"op": "remove", "path": annotation_path(k)}))
        .collect()
}

/// Refuses up front when tether's annotations would push the object over the limit.
pub fn check_room(
    live: &Value,
    kind: &'static str,
    adds: &[(&str, String)],
) -> Result<(), InterceptError> {
    let current: Vec<(&str, &str)> = live
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let size = |pairs: &mut dyn Iterator<Item = (&str, &str)>| {
        pairs.map(|(k, v)| k.len() + v.len()).sum::<usize>()
    };
    let kept = size(
        &mut current
            .iter()
            .copied()
            .filter(|(k, _)| !adds.iter().any(|(a, _)| a == k)),
    );
    let need = size(&mut adds.iter().map(|(k, v)| (*k, v.as_str())));
    if kept + need > ANNOTATIONS_LIMIT {
        return Err(InterceptError::AnnotationsFull {
            kind,
            name: name_of(live).to_owned(),
            size: size(&mut current.iter().copied()),
            need,
            limit: ANNOTATIONS_LIMIT,
        });
    }
    Ok(())
}

fn name_of(live: &Value) -> &str {
    live.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

/// The Secret that holds a Deployment's attach token.
pub fn secret_name(deployment: &str) -> String {
    format!("tether-attach-{deployment}")
}

/// The key of the token in that Secret.
pub const TOKEN_KEY: &str = "token";

/// The agent's environment variable for the token; the agent checks laptops against it.
pub const TOKEN_ENV: &str = "TETHER_AGENT_TOKEN";

/// The sidecar: one static binary, non-root, read-only, no capabilities, a memory limit,
/// its token from the attach Secret: it passes the `restricted` Pod Security level.
pub fn agent_container(installed: &Installed) -> Value {
    // The image's entrypoint is the agent binary: its arguments alone pick the role.
    let mut args: Vec<String> = installed
        .ports
        .iter()
        .flat_map(|p| {
            [
                "--port".to_owned(),
                format!("{}:{}", p.agent_port, p.app_port),
            ]
        })
        .collect();
    args.extend(["--control".to_owned(), installed.control_port.to_string()]);
    // Port names are at most 15 characters and unique in the pod.
    let ports: Vec<Value> = installed
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = match i {
                0 => AGENT_CONTAINER.to_owned(),
                i => format!("tether-agent{i}"),
            };
            json!({"name": name, "containerPort": p.agent_port, "protocol": "TCP"})
        })
        .collect();
    // The agent binds every port before it serves any, so one open port means all are.
    let probe = installed.ports.first().map_or(0, |p| p.agent_port);
    json!({
        "name": AGENT_CONTAINER,
        "image": installed.image,
        "args": args,
        "env": [
            {"name": "TETHER_LOG", "value": "info"},
            {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
                "name": secret_name(&installed.deployment),
                "key": TOKEN_KEY,
            }}},
        ],
        "ports": ports,
        "readinessProbe": {"tcpSocket": {"port": probe}, "periodSeconds": 1},
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "64Mi"},
        },
        "securityContext": restricted_security_context(),
    })
}

/// What an agent container runs under: non-root, read-only, no capabilities, the runtime's
/// seccomp profile; enough for the `restricted` Pod Security level.
pub fn restricted_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Index of the agent in the pod template's containers.
fn agent_index(live: &Value) -> Option<usize> {
    live.pointer(CONTAINERS)?
        .as_array()?
        .iter()
        .position(|c| c.get("name").and_then(Value::as_str) == Some(AGENT_CONTAINER))
}

/// Adds the agent (or replaces an older one) and marks the Deployment as carrying it for
/// `service`.
pub fn install_deployment(
    live: &Value,
    installed: &Installed,
    service: &str,
) -> Result<Vec<Value>, InterceptError> {
    if let Some(other) = live
        .pointer(&annotation_path(FOR_SERVICE))
        .and_then(Value::as_str)
        .filter(|s| *s != service)
    {
        return Err(InterceptError::OtherService {
            deployment: name_of(live).to_owned(),
            service: other.to_owned(),
        });
    }
    if !live.pointer(CONTAINERS).is_some_and(Value::is_array) {
        return Err(InterceptError::Corrupt(format!(
            "Deployment {} has no pod template containers",
            name_of(live)
        )));
    }
    let container = agent_container(installed);
    let mut ops = match agent_index(live) {
        Some(i) => vec![
            json!({"op": "test", "path": format!("{CONTAINERS}/{i}/name"), "value": AGENT_CONTAINER}),
            json!({"op": "replace", "path": format!("{CONTAINERS}/{i}"), "value": container}),
        ],
        None => vec![json!({"op": "add", "path": format!("{CONTAINERS}/-"), "value": container})],
    };
    ops.extend(set_annotations(live, &deployment_annotations(service)));
    Ok(ops)
}

/// The annotations install puts on the Deployment.
pub fn deployment_annotations(service: &str) -> Vec<(&'static str, String)> {
    vec![(FOR_SERVICE, service.to_owned())]
}

/// Removes the agent and tether's annotations; `None` when none of it is there.
pub fn restore_deployment(live: &Value) -> Option<Vec<Value>> {
    let mut ops = Vec::new();
    if let Some(i) = agent_index(live) {
        ops.push(
            json!({"op": "test", "path": format!("{CONTAINERS}/{i}/name"), "value": AGENT_CONTAINER}),
        );
        ops.push(json!({"op": "remove", "path": format!("{CONTAINERS}/{i}")}));
    }
    ops.extend(remove_annotations(
        live,
        &[FOR_SERVICE, LEGACY_ORIGINAL_SPEC],
    ));
    (!ops.is_empty()).then_some(ops)
}

/// The index of the Service port `port` (TCP), in the live object.
fn port_index(live: &Value, port: i32) -> Option<usize> {
    live.pointer("/spec/ports")?
        .as_array()?
        .iter()
        .position(|p| {
            p.get("port").and_then(Value::as_i64) == Some(i64::from(port))
                && p.get("protocol")
                    .and_then(Value::as_str)
                    .is_none_or(|proto| proto == "TCP")
        })
}

/// The annotation install puts on the Service.
pub fn service_annotations(
    installed: &Installed,
) -> Result<Vec<(&'static str, String)>, InterceptError> {
    let record = serde_json::to_string(installed).map_err(|source| InterceptError::Record {
        what: "the Service".into(),
        source,
    })?;
    Ok(vec![(INTERCEPT, record)])
}

/// Points the intercepted ports at the agent and records what they pointed at.
pub fn repoint_service(live: &Value, installed: &Installed) -> Result<Vec<Value>, InterceptError> {
    let mut ops = Vec::new();
    for p in &installed.ports {
        let i = port_index(live, p.service_port).ok_or_else(|| {
            InterceptError::Corrupt(format!(
                "Service {} lost its port {}",
                name_of(live),
                p.service_port
            ))
        })?;
        let path = format!("/spec/ports/{i}/targetPort");
        ops.push(
            json!({"op": "test", "path": format!("/spec/ports/{i}/port"), "value": p.service_port}),
        );
        match live.pointer(&path) {
            Some(now) => {
                ops.push(json!({"op": "test", "path": path, "value": now}));
                ops.push(json!({"op": "replace", "path": path, "value": p.agent_port}));
            }
            None => ops.push(json!({"op": "add", "path": path, "value": p.agent_port})),
        }
    }
    ops.extend(set_annotations(live, &service_annotations(installed)?));
    Ok(ops)
}

/// Puts the intercepted ports' targetPorts back (each only while it still leads to the
/// agent: a redeploy may have set it since) and removes tether's annotations; `None`
/// when the Service carries no record.
pub fn restore_service(live: &Value, record: Option<&Installed>) -> Option<Vec<Value>> {
    let mut ops = Vec::new();
    for r in record.iter().flat_map(|r| &r.ports) {
        let original = r
            .original_target_port
            .as_ref()
            .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
            .or_else(|| legacy_target_port(live, r.service_port));
        if let Some(i) = port_index(live, r.service_port) {
            let path = format!("/spec/ports/{i}/targetPort");
            let agent = json!(r.agent_port);
            if live.pointer(&path) == Some(&agent) {
                ops.push(json!({"op": "test", "path": path, "value": agent}));
                ops.push(match original {
                    Some(v) if !v.is_null() => json!({"op": "replace", "path": path, "value": v}),
                    _ => json!({"op": "remove", "path": path}),
                });
            }
        }
    }
    ops.extend(remove_annotations(live, &[INTERCEPT, LEGACY_ORIGINAL_SPEC]));
    (!ops.is_empty()).then_some(ops)
}

/// An old record's targetPort for `port`, from the whole spec it kept.
fn legacy_target_port(live: &Value, port: i32) -> Option<Value> {
    let text = live
        .pointer(&annotation_path(LEGACY_ORIGINAL_SPEC))?
        .as_str()?;
    let spec: Value = serde_json::from_str(text).ok()?;
    spec.get("ports")?
        .as_array()?
        .iter()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(i64::from(port)))?
        .get("targetPort")
        .cloned()
}

/// The record on a live Service, if it has one that parses.
pub fn record_of(live: &Value) -> Option<Installed> {
    Installed::parse(live.pointer(&annotation_path(INTERCEPT))?.as_str()?)
}

/// The Service a live Deployment carries the agent for.
pub fn for_service(live: &Value) -> Option<&str> {
    live.pointer(&annotation_path(FOR_SERVICE))?.as_str()
}

/// Whether the live Deployment's pod template holds the agent.
pub fn has_agent(live: &Value) -> bool {
    agent_index(live).is_some()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;
    use crate::intercept::spec::InterceptedPort;

    fn apply(doc: &Value, ops: &[Value]) -> Value {
        let mut doc = doc.clone();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec())).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        doc
    }

    /// An unusual Deployment: a selector of matchExpressions only, an init container and
    /// a native sidecar, fields this tether's types do not know, annotations near the
    /// limit.
    fn deployment(filler: usize) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "payments", "namespace": "api",
                         "annotations": {"keep": "me", "big": "x".repeat(filler)}},
            "spec": {
                "replicas": 2,
                "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["payments"]}]},
                "template": {
                    "metadata": {"labels": {"app": "payments"}},
                    "spec": {
                        "someFutureField": {"kept": [1, 2, 3]},
                        "initContainers": [
                            {"name": "migrate", "image": "m:1"},
                            {"name": "proxy", "image": "p:1", "restartPolicy": "Always",
                             "ports": [{"containerPort": 9900}]},
                        ],
                        "containers": [
                            {"name": "payments", "image": "payments:1", "futureContainerField": true,
                             "ports": [{"name": "http", "containerPort": 8080}]},
                        ],
                    },
                },
            },
        })
    }

    /// A Service of several ports, the intercepted one with a named targetPort.
    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "payments-svc", "namespace": "api"},
            "spec": {
                "selector": {"app": "payments"},
                "futureServiceField": "kept",
                "ports": [
                    {"name": "metrics", "port": 9090, "targetPort": 9100, "protocol": "TCP"},
                    {"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
                ],
            },
        })
    }

    /// The web port (80, targetPort `http`) intercepted.
    fn installed() -> Installed {
        Installed {
            deployment: "payments".into(),
            container: "payments".into(),
            ports: vec![InterceptedPort {
                service_port: 80,
                app_port: 8080,
                agent_port: 9901,
                original_target_port: Some(IntOrString::String("http".into())),
            }],
            control_port: 9902,
            image: "127.0.0.1:5000/tether-agent:abc".into(),
        }
    }

    #[test]
    fn restore_undoes_only_tethers_changes_and_keeps_what_others_changed() {
        let inst = installed();
        let (d0, s0) = (deployment(10), service());
        let d1 = apply(
            &d0,
            &install_deployment(&d0, &inst, "payments-svc").unwrap(),
        );
        let s1 = apply(&s0, &repoint_service(&s0, &inst).unwrap());
        assert_eq!(
            d1.pointer("/spec/template/spec/containers/1/name"),
            Some(&json!(AGENT_CONTAINER))
        );
        assert_eq!(s1.pointer("/spec/ports/1/targetPort"), Some(&json!(9901)));
        assert_eq!(
            s1.pointer("/spec/ports/0/targetPort"),
            Some(&json!(9100)),
            "other ports untouched"
        );
        assert_eq!(record_of(&s1), Some(inst.clone()));
        let text = serde_json::to_string(&d1).unwrap();
        assert!(
            text.contains("secretKeyRef") && text.contains("64Mi"),
            "{text}"
        );

        // Meanwhile others: `kubectl set image`, `scale`, `set env`, a new annotation.
        let mut d2 = d1.clone();
        d2["spec"]["replicas"] = json!(3);
        d2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("payments:2");
        d2["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "X", "value": "1"}]);
        d2["metadata"]["annotations"]["theirs"] = json!("too");
        let d3 = apply(&d2, &restore_deployment(&d2).unwrap());
        let s3 = apply(&s1, &restore_service(&s1, record_of(&s1).as_ref()).unwrap());

        let mut want = d0.clone();
        want["spec"]["replicas"] = json!(3);
        want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("payments:2");
        want["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "X", "value": "1"}]);
        want["metadata"]["annotations"]["theirs"] = json!("too");
        assert_eq!(d3, want);
        assert_eq!(s3["spec"], s0["spec"], "the Service spec exactly as it was");
        assert_eq!(
            s3["metadata"]["annotations"],
            json!({}),
            "no annotation of tether's left"
        );
        assert_eq!(restore_deployment(&d3), None, "nothing left to restore");
        assert_eq!(restore_service(&s3, record_of(&s3).as_ref()), None);
    }

    #[test]
    fn several_ports_go_to_the_agent_together_and_come_back_exactly() {
        let mut inst = installed();
        inst.ports.push(InterceptedPort {
            service_port: 9090,
            app_port: 9100,
            agent_port: 9903,
            original_target_port: Some(IntOrString::Int(9100)),
        });
        let (d0, s0) = (deployment(10), service());
        let d1 = apply(
            &d0,
            &install_deployment(&d0, &inst, "payments-svc").unwrap(),
        );
        let agent = &d1["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(
            agent["args"],
            json!([
                "--port",
                "9901:8080",
                "--port",
                "9903:9100",
                "--control",
                "9902"
            ])
        );
        assert_eq!(
            agent["ports"],
            json!([
                {"name": "tether-agent", "containerPort": 9901, "protocol": "TCP"},
                {"name": "tether-agent1", "containerPort": 9903, "protocol": "TCP"},
            ])
        );
        let s1 = apply(&s0, &repoint_service(&s0, &inst).unwrap());
        assert_eq!(s1.pointer("/spec/ports/0/targetPort"), Some(&json!(9903)));
        assert_eq!(s1.pointer("/spec/ports/1/targetPort"), Some(&json!(9901)));
        assert_eq!(record_of(&s1), Some(inst));
        // A redeploy put one port back meanwhile: restore leaves that one as it is.
        let mut s2 = s1.clone();
        s2["spec"]["ports"][0]["targetPort"] = json!(9101);
        let s3 = apply(&s2, &restore_service(&s2, record_of(&s2).as_ref()).unwrap());
        let mut want = s0.clone();
        want["spec"]["ports"][0]["targetPort"] = json!(9101);
        assert_eq!(s3["spec"], want["spec"]);
        assert_eq!(apply(&d1, &restore_deployment(&d1).unwrap()), d0);
    }

    #[test]
    fn installing_again_replaces_the_agent_and_keeps_the_first_record() {
        let inst = installed();
        let (d0, s0) = (deployment(10), service());
        let d1 = apply(
            &d0,
            &install_deployment(&d0, &inst, "payments-svc").unwrap(),
        );
        let newer = Installed {
            image: "127.0.0.1:5000/tether-agent:def".into(),
            ..inst.clone()
        };
        let d2 = apply(
            &d1,
            &install_deployment(&d1, &newer, "payments-svc").unwrap(),
        );
        let containers = d2.pointer(CONTAINERS).unwrap().as_array().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[1]["image"], json!(newer.image));
        // A second Service on the same Deployment is refused, nothing patched.
        assert!(matches!(
            install_deployment(&d2, &inst, "payments-admin"),
            Err(InterceptError::OtherService { .. })
        ));
        let back = apply(&d2, &restore_deployment(&d2).unwrap());
        assert_eq!(back, d0);
        // A redeploy put the Service's targetPort back meanwhile: restore leaves it.
        let s1 = apply(&s0, &repoint_service(&s0, &inst).unwrap());
        let mut s2 = s1.clone();
        s2["spec"]["ports"][1]["targetPort"] = json!(8081);
        let s3 = apply(&s2, &restore_service(&s2, record_of(&s2).as_ref()).unwrap());
        assert_eq!(s3["spec"]["ports"][1]["targetPort"], json!(8081));
    }

    #[test]
    fn a_concurrent_change_makes_the_patch_fail_instead_of_removing_the_wrong_container() {
        let inst = installed();
        let d0 = deployment(10);
        let d1 = apply(
            &d0,
            &install_deployment(&d0, &inst, "payments-svc").unwrap(),
        );
        let ops = restore_deployment(&d1).unwrap();
        // Someone inserted a container before the agent after the patch was computed.
        let mut moved = d1.clone();
        moved["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!({"name": "debug", "image": "d:1"}));
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
        let mut doc = moved.clone();
        assert!(json_patch::patch(&mut doc, &patch).is_err());
    }

    #[test]
    fn annotations_near_the_limit_are_refused_before_any_change() {
        let inst = installed();
        let room = ANNOTATIONS_LIMIT - "keep".len() - "me".len() - "big".len();
        let adds = deployment_annotations("payments-svc");
        assert!(check_room(&deployment(room - 200), "Deployment", &adds).is_ok());
        let err = check_room(&deployment(room - 5), "Deployment", &adds).unwrap_err();
        assert!(
            err.to_string().contains("over Kubernetes' limit") && err.is_bad_input(),
            "{err}"
        );
        assert!(check_room(&service(), "Service", &service_annotations(&inst).unwrap()).is_ok());
    }

    #[test]
    fn an_old_record_of_the_whole_spec_is_restored_and_removed() {
        let inst = installed();
        let mut s = service();
        s["spec"]["ports"][1]["targetPort"] = json!(9901);
        // The one-port record of that version, with no targetPort of its own.
        let p = &inst.ports[0];
        let old = json!({
            "deployment": inst.deployment, "container": inst.container,
            "service_port": p.service_port, "app_port": p.app_port, "agent_port": p.agent_port,
            "control_port": inst.control_port, "image": inst.image,
        });
        s["metadata"]["annotations"] = json!({
            INTERCEPT: old.to_string(),
            LEGACY_ORIGINAL_SPEC: serde_json::to_string(&service()["spec"]).unwrap(),
        });
        let back = apply(&s, &restore_service(&s, record_of(&s).as_ref()).unwrap());
        assert_eq!(back["spec"], service()["spec"]);
        assert_eq!(back["metadata"]["annotations"], json!({}));
    }
}
