//! The spec changes of an intercept, as pure functions on the Service and Deployment:
//! which port and container are intercepted, the agent sidecar, the repointed Service,
//! and the recorded originals that `leave` puts back. No cluster access here.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Container, Service},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde::{Deserialize, Serialize};

use super::InterceptError;

/// Holds the object's original spec as JSON; written in the same update as the first
/// change, so a change never exists without its record.
pub const ORIGINAL_SPEC: &str = "tether.dev/original-spec";
/// On the Service: what is intercepted and how ([`Installed`] as JSON).
pub const INTERCEPT: &str = "tether.dev/intercept";
/// On the Deployment: the Service it was changed for.
pub const FOR_SERVICE: &str = "tether.dev/intercepted-for";
/// The sidecar's container name.
pub const AGENT_CONTAINER: &str = "tether-agent";
/// The agent's traffic and control ports, unless the pod already uses them.
pub const AGENT_PORT: u16 = 9900;

/// What an installed intercept is, as recorded on the Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub deployment: String,
    /// The app container whose port is intercepted.
    pub container: String,
    /// The Service port (its `port` field) that is intercepted.
    pub service_port: i32,
    pub app_port: u16,
    pub agent_port: u16,
    pub control_port: u16,
    pub image: String,
}

/// Where a Service's traffic goes now: the port, the workload and its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: String,
    pub namespace: String,
    /// Index into the Service's ports.
    pub port_index: usize,
    pub service_port: i32,
    pub app_port: u16,
    pub deployment: String,
    pub container: String,
}

/// A workload of a kind other than Deployment whose pods the Service selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherWorkload {
    pub kind: String,
    pub name: String,
}

/// The Service's original spec: the recorded one when it is intercepted already.
pub fn original_service(svc: &Service) -> Result<Service, InterceptError> {
    let mut original = svc.clone();
    if let Some(spec) = recorded_spec(&svc.metadata, "Service")? {
        original.spec = Some(spec);
    }
    Ok(original)
}

/// Same for a Deployment.
pub fn original_deployment(d: &Deployment) -> Result<Deployment, InterceptError> {
    let mut original = d.clone();
    if let Some(spec) = recorded_spec(&d.metadata, "Deployment")? {
        original.spec = Some(spec);
    }
    Ok(original)
}

/// The spec recorded in the object's `ORIGINAL_SPEC` annotation, if any.
fn recorded_spec<S: serde::de::DeserializeOwned>(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
) -> Result<Option<S>, InterceptError> {
    annotation(&meta.annotations, ORIGINAL_SPEC)
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                InterceptError::Corrupt(format!(
                    "the {ORIGINAL_SPEC} annotation of {kind} {} is not a {kind} spec: {e}",
                    name(&meta.name)
                ))
            })
        })
        .transpose()
}

pub fn annotation<'a>(a: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    a.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn name(n: &Option<String>) -> &str {
    n.as_deref().unwrap_or("?")
}

/// Finds what `port` means for `svc` (its original spec): a Service port, or the
/// container port a Service port leads to; then the one Deployment behind it.
pub fn plan(
    svc: &Service,
    deployments: &[Deployment],
    others: &[OtherWorkload],
    port: u16,
) -> Result<Target, InterceptError> {
    let svc_name = name(&svc.metadata.name).to_owned();
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let spec = svc.spec.as_ref();
    let selector = spec
        .and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| InterceptError::NoSelector(svc_name.clone()))?;
    let selects = |labels: &Option<BTreeMap<String, String>>| {
        labels
            .as_ref()
            .is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
    };
    let matching: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| {
            selects(
                &d.spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.labels.clone()),
            )
        })
        .collect();
    let deployment = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(match others.first() {
                Some(o) => InterceptError::UnsupportedKind {
                    service: svc_name,
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                },
                None => InterceptError::NoWorkload(svc_name),
            });
        }
        many => {
            return Err(InterceptError::ManyWorkloads {
                service: svc_name,
                names: many
                    .iter()
                    .map(|d| name(&d.metadata.name).to_owned())
                    .collect(),
            });
        }
    };
    let containers: &[Container] = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.as_slice())
        .unwrap_or_default();
    let ports = spec.and_then(|s| s.ports.clone()).unwrap_or_default();
    // Resolve each Service port to (container, container port).
    let resolved: Vec<Option<(String, u16)>> = ports
        .iter()
        .map(|p| resolve_target(p.target_port.as_ref(), p.port, containers))
        .collect();
    let index = ports
        .iter()
        .position(|p| p.port == i32::from(port))
        .or_else(|| {
            resolved
                .iter()
                .position(|r| r.as_ref().is_some_and(|(_, n)| *n == port))
        })
        .ok_or_else(|| InterceptError::PortNotServed {
            service: svc_name.clone(),
            port,
            served: ports
                .iter()
                .zip(&resolved)
                .map(|(p, r)| match r {
                    Some((_, n)) => format!("{} → {n}", p.port),
                    None => p.port.to_string(),
                })
                .collect(),
        })?;
    let (container, app_port) =
        resolved[index]
            .clone()
            .ok_or_else(|| InterceptError::PortNotServed {
                service: svc_name.clone(),
                port,
                served: vec![format!(
                    "{} (its targetPort names no port of Deployment {})",
                    ports[index].port,
                    name(&deployment.metadata.name)
                )],
            })?;
    if ports[index].protocol.as_deref().is_some_and(|p| p != "TCP") {
        return Err(InterceptError::NotTcp(svc_name));
    }
    Ok(Target {
        service: svc_name,
        namespace,
        port_index: index,
        service_port: ports[index].port,
        app_port,
        deployment: name(&deployment.metadata.name).to_owned(),
        container,
    })
}

/// The container and port a Service port's targetPort leads to.
fn resolve_target(
    target: Option<&IntOrString>,
    port: i32,
    containers: &[Container],
) -> Option<(String, u16)> {
    let first = || containers.first().map(|c| c.name.clone());
    match target {
        Some(IntOrString::String(named)) => containers.iter().find_map(|c| {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(named.as_str()))
                .and_then(|p| Some((c.name.clone(), u16::try_from(p.container_port).ok()?)))
        }),
        Some(IntOrString::Int(n)) => {
            let n = u16::try_from(*n).ok()?;
            let owner = containers
                .iter()
                .find(|c| {
                    c.ports
                        .iter()
                        .flatten()
                        .any(|p| p.container_port == i32::from(n))
                })
                .map(|c| c.name.clone())
                .or_else(first)?;
            Some((owner, n))
        }
        None => Some((first()?, u16::try_from(port).ok()?)),
    }
}

/// Two free ports for the agent, avoiding every port the pod's containers declare.
pub fn agent_ports(d: &Deployment, app_port: u16) -> (u16, u16) {
    let used: Vec<u16> = d
        .spec
        .iter()
        .filter_map(|s| s.template.spec.as_ref())
        .flat_map(|p| p.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .chain([app_port])
        .collect();
    let mut free = (AGENT_PORT..u16::MAX).filter(|p| !used.contains(p));
    let listen = free.next().unwrap_or(AGENT_PORT);
    let control = free.next().unwrap_or(AGENT_PORT + 1);
    (listen, control)
}

/// The sidecar: one static binary, non-root, read-only, no capabilities, so it passes
/// the "restricted" Pod Security level.
pub fn agent_container(installed: &Installed) -> Result<Container, InterceptError> {
    let json = serde_json::json!({
        "name": AGENT_CONTAINER,
        "image": installed.image,
        // `--` because the CLI's `agent` takes its arguments as trailing values, which
        // clap reads only after the first non-flag.
        "args": [
            "agent",
            "--",
            "--app-port", installed.app_port.to_string(),
            "--listen", installed.agent_port.to_string(),
            "--control", installed.control_port.to_string(),
        ],
        "env": [{"name": "TETHER_LOG", "value": "info"}],
        "ports": [{"name": AGENT_CONTAINER, "containerPort": installed.agent_port, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": installed.agent_port}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    });
    serde_json::from_value(json)
        .map_err(|e| InterceptError::Corrupt(format!("the agent container: {e}")))
}

/// The Deployment with the sidecar (replacing an older one) and its original recorded.
pub fn with_agent(
    live: &Deployment,
    installed: &Installed,
    service: &str,
) -> Result<Deployment, InterceptError> {
    let original = original_deployment(live)?;
    let mut d = live.clone();
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if !annotations.contains_key(ORIGINAL_SPEC) {
        annotations.insert(ORIGINAL_SPEC.into(), to_json(&original.spec)?);
    }
    annotations.insert(FOR_SERVICE.into(), service.to_owned());
    let pod = d
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .ok_or_else(|| InterceptError::Corrupt("the Deployment has no pod template".into()))?;
    pod.containers.retain(|c| c.name != AGENT_CONTAINER);
    pod.containers.push(agent_container(installed)?);
    Ok(d)
}

/// The Service pointing the intercepted port at the agent, with its original recorded.
pub fn repointed(
    live: &Service,
    target: &Target,
    installed: &Installed,
) -> Result<Service, InterceptError> {
    let original = original_service(live)?;
    let mut s = live.clone();
    let annotations = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if !annotations.contains_key(ORIGINAL_SPEC) {
        annotations.insert(ORIGINAL_SPEC.into(), to_json(&original.spec)?);
    }
    annotations.insert(INTERCEPT.into(), to_json(installed)?);
    let port = s
        .spec
        .as_mut()
        .and_then(|s| s.ports.as_mut())
        .and_then(|p| p.get_mut(target.port_index))
        .ok_or_else(|| InterceptError::Corrupt("the Service lost its port".into()))?;
    port.target_port = Some(IntOrString::Int(i32::from(installed.agent_port)));
    Ok(s)
}

/// The object as it was: spec from the record, tether's annotations gone. `None` when
/// it carries no record.
pub fn restored_service(live: &Service) -> Result<Option<Service>, InterceptError> {
    if annotation(&live.metadata.annotations, ORIGINAL_SPEC).is_none() {
        return Ok(None);
    }
    let mut s = original_service(live)?;
    strip(&mut s.metadata.annotations);
    Ok(Some(s))
}

pub fn restored_deployment(live: &Deployment) -> Result<Option<Deployment>, InterceptError> {
    if annotation(&live.metadata.annotations, ORIGINAL_SPEC).is_none() {
        return Ok(None);
    }
    let mut d = original_deployment(live)?;
    strip(&mut d.metadata.annotations);
    Ok(Some(d))
}

fn strip(a: &mut Option<BTreeMap<String, String>>) {
    if let Some(map) = a {
        map.remove(ORIGINAL_SPEC);
        map.remove(INTERCEPT);
        map.remove(FOR_SERVICE);
        if map.is_empty() {
            *a = None;
        }
    }
}

/// What is installed for a Service, from its annotation.
pub fn installed(svc: &Service) -> Option<Installed> {
    serde_json::from_str(annotation(&svc.metadata.annotations, INTERCEPT)?).ok()
}

fn to_json<T: Serialize>(v: &T) -> Result<String, InterceptError> {
    serde_json::to_string(v).map_err(|e| InterceptError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(target: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "payments-svc", "namespace": "api"},
            "spec": {
                "selector": {"app": "payments"},
                "clusterIP": "10.96.0.12",
                "ports": [{"name": "http", "port": 80, "targetPort": target, "protocol": "TCP"}],
            }
        }))
        .unwrap()
    }

    fn deployment(name: &str, app: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "api", "annotations": {"keep": "me"}},
            "spec": {
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app, "tier": "backend"}},
                    "spec": {"containers": [
                        {"name": "payments", "image": "payments:1",
                         "ports": [{"name": "http", "containerPort": 8080}]},
                        {"name": "metrics", "image": "m:1", "ports": [{"containerPort": 9900}]},
                    ]}
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_named_target_port_resolves_through_the_deployment() {
        let svc = service(serde_json::json!("http"));
        let ds = [
            deployment("other", "orders"),
            deployment("payments", "payments"),
        ];
        for port in [8080, 80] {
            let t = plan(&svc, &ds, &[], port).unwrap();
            assert_eq!(
                (
                    t.deployment.as_str(),
                    t.container.as_str(),
                    t.app_port,
                    t.service_port
                ),
                ("payments", "payments", 8080, 80)
            );
        }
        let err = plan(&svc, &ds, &[], 3000).unwrap_err();
        assert!(err.to_string().contains("80 → 8080"), "{err}");
    }

    #[test]
    fn other_kinds_and_ambiguity_are_refused_in_words() {
        let svc = service(serde_json::json!(8080));
        let err = plan(
            &svc,
            &[],
            &[OtherWorkload {
                kind: "StatefulSet".into(),
                name: "payments".into(),
            }],
            8080,
        )
        .unwrap_err();
        assert!(err.to_string().contains("StatefulSet payments"), "{err}");
        let two = [deployment("a", "payments"), deployment("b", "payments")];
        assert!(matches!(
            plan(&svc, &two, &[], 8080),
            Err(InterceptError::ManyWorkloads { .. })
        ));
    }

    #[test]
    fn install_then_restore_gives_back_the_exact_specs() {
        let svc = service(serde_json::json!("http"));
        let d = deployment("payments", "payments");
        let t = plan(&svc, std::slice::from_ref(&d), &[], 8080).unwrap();
        let (agent_port, control_port) = agent_ports(&d, t.app_port);
        assert_eq!(
            (agent_port, control_port),
            (9901, 9902),
            "9900 is taken by metrics"
        );
        let installed = Installed {
            deployment: t.deployment.clone(),
            container: t.container.clone(),
            service_port: t.service_port,
            app_port: t.app_port,
            agent_port,
            control_port,
            image: "127.0.0.1:5000/tether-agent:abc".into(),
        };
        let d2 = with_agent(&d, &installed, "payments-svc").unwrap();
        let s2 = repointed(&svc, &t, &installed).unwrap();
        assert_eq!(installed_of(&s2), Some(installed.clone()));
        let containers = &d2
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers;
        assert_eq!(containers.len(), 3);
        assert_eq!(
            s2.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].target_port,
            Some(IntOrString::Int(9901))
        );
        // Installing again (a newer agent image) keeps the first record.
        let newer = Installed {
            image: "127.0.0.1:5000/tether-agent:def".into(),
            ..installed.clone()
        };
        let d3 = with_agent(&d2, &newer, "payments-svc").unwrap();
        assert_eq!(
            d3.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers
                .len(),
            3
        );
        let s3 = repointed(&s2, &t, &newer).unwrap();
        // Planning on an intercepted Service uses its recorded original.
        let again = plan(
            &original_service(&s3).unwrap(),
            std::slice::from_ref(&d3),
            &[],
            8080,
        )
        .unwrap();
        assert_eq!(again, t);

        let back_d = restored_deployment(&d3).unwrap().unwrap();
        let back_s = restored_service(&s3).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&back_d.spec).unwrap(),
            serde_json::to_value(&d.spec).unwrap()
        );
        assert_eq!(back_d.metadata.annotations, d.metadata.annotations);
        assert_eq!(
            serde_json::to_value(&back_s.spec).unwrap(),
            serde_json::to_value(&svc.spec).unwrap()
        );
        assert_eq!(back_s.metadata.annotations, None);
        assert!(restored_service(&svc).unwrap().is_none());
    }

    fn installed_of(s: &Service) -> Option<Installed> {
        installed(s)
    }
}
