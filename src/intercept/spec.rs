//! What an intercept is, read from the Service and its Deployment without changing
//! anything: which Service ports (one per `-p LOCAL[:REMOTE]`), which Deployment and
//! containers they lead to, the ports the agent may take, and the record tether keeps on
//! the Service. Pure functions; the changes themselves are JSON patches in `patch`.

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

/// On the Service: what is intercepted and how ([`Installed`] as JSON), including the
/// values tether changed there (each intercepted port's original targetPort).
pub const INTERCEPT: &str = "tether.dev/intercept";
/// On the Deployment: the Service it carries the agent for.
pub const FOR_SERVICE: &str = "tether.dev/intercepted-for";
/// Written by tether versions that recorded the whole original spec; read only to find
/// an old intercept's targetPort, and removed on restore.
pub const LEGACY_ORIGINAL_SPEC: &str = "tether.dev/original-spec";
/// The sidecar's container name.
pub const AGENT_CONTAINER: &str = "tether-agent";
/// The agent's traffic and control ports, unless the pod already uses them.
pub const AGENT_PORT: u16 = 9900;

/// What an installed intercept is, as recorded on the Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub deployment: String,
    /// The app container of the first intercepted port (its environment is the one
    /// `--env-file` writes).
    pub container: String,
    /// The intercepted Service ports, in the order of the `-p` flags; never empty.
    pub ports: Vec<InterceptedPort>,
    pub control_port: u16,
    pub image: String,
}

/// One intercepted Service port and where the agent takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterceptedPort {
    /// The Service port (its `port` field).
    pub service_port: i32,
    /// The container port it led to, which the agent passes untaken traffic to.
    pub app_port: u16,
    /// The agent's port for it: the Service port's targetPort while intercepted.
    pub agent_port: u16,
    /// The targetPort before tether pointed it at the agent: the value of the Service
    /// that restore puts back. Absent in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_target_port: Option<IntOrString>,
}

impl Installed {
    /// The Service ports intercepted, in order.
    pub fn service_ports(&self) -> Vec<i32> {
        self.ports.iter().map(|p| p.service_port).collect()
    }

    /// Reads a record: this version's, or the one-port record earlier versions wrote.
    pub fn parse(text: &str) -> Option<Installed> {
        /// The record of versions that intercepted one port.
        #[derive(Deserialize)]
        struct OnePort {
            deployment: String,
            container: String,
            service_port: i32,
            app_port: u16,
            agent_port: u16,
            control_port: u16,
            image: String,
            #[serde(default)]
            original_target_port: Option<IntOrString>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Record {
            Current(Installed),
            OnePort(OnePort),
        }
        match serde_json::from_str(text).ok()? {
            Record::Current(i) => Some(i).filter(|i| !i.ports.is_empty()),
            Record::OnePort(o) => Some(Installed {
                deployment: o.deployment,
                container: o.container,
                ports: vec![InterceptedPort {
                    service_port: o.service_port,
                    app_port: o.app_port,
                    agent_port: o.agent_port,
                    original_target_port: o.original_target_port,
                }],
                control_port: o.control_port,
                image: o.image,
            }),
        }
    }
}

/// Where a Service's traffic goes now: the port, the workload and its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: String,
    pub namespace: String,
    /// Index into the Service's ports.
    pub port_index: usize,
    pub service_port: i32,
    /// The port's targetPort before any intercept (what restore puts back).
    pub original_target_port: Option<IntOrString>,
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

/// `-p LOCAL[:REMOTE]`: where the local process listens and which Service port it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub local: u16,
    pub remote: Option<Remote>,
}

/// A Service port, by its number or its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Number(u16),
    Name(String),
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Number(n) => write!(f, "{n}"),
            Remote::Name(n) => f.write_str(n),
        }
    }
}

impl PortSpec {
    /// Parses `LOCAL` or `LOCAL:REMOTE` (REMOTE a number or a port name).
    pub fn parse(text: &str) -> Result<PortSpec, InterceptError> {
        let bad = || InterceptError::BadPort(text.to_owned());
        let (local, remote) = match text.split_once(':') {
            Some((l, r)) => (l, Some(r)),
            None => (text, None),
        };
        let local: u16 = local.parse().map_err(|_| bad())?;
        if local == 0 {
            return Err(bad());
        }
        let remote = match remote {
            None => None,
            Some("") => return Err(bad()),
            Some(r) => Some(match r.parse::<u16>() {
                Ok(0) => return Err(bad()),
                Ok(n) => Remote::Number(n),
                Err(_) if r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                    Remote::Name(r.to_owned())
                }
                Err(_) => return Err(bad()),
            }),
        };
        Ok(PortSpec { local, remote })
    }
}

/// The Service as it is without tether: the intercepted ports' targetPorts put back from
/// the record. Only for planning; nothing is written from it.
pub fn original_service(svc: &Service) -> Service {
    let mut original = svc.clone();
    let Some(record) = installed(svc) else {
        return original;
    };
    for r in &record.ports {
        let before = r
            .original_target_port
            .clone()
            .or_else(|| legacy_target_port(svc, r.service_port));
        if let Some(port) = original
            .spec
            .as_mut()
            .and_then(|s| s.ports.as_mut())
            .and_then(|ps| ps.iter_mut().find(|p| p.port == r.service_port))
        {
            if port.target_port == Some(IntOrString::Int(i32::from(r.agent_port))) {
                port.target_port = before;
            }
        }
    }
    original
}

/// An old record's targetPort for `port`, from the whole spec it kept.
pub fn legacy_target_port(svc: &Service, port: i32) -> Option<IntOrString> {
    let text = annotation(&svc.metadata.annotations, LEGACY_ORIGINAL_SPEC)?;
    let spec: k8s_openapi::api::core::v1::ServiceSpec = serde_json::from_str(text).ok()?;
    spec.ports?
        .into_iter()
        .find(|p| p.port == port)?
        .target_port
}

pub fn annotation<'a>(a: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    a.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn name(n: &Option<String>) -> &str {
    n.as_deref().unwrap_or("?")
}

/// Finds what each of `ports` means for `svc` ([`plan`]); two flags that take the same
/// Service port are refused.
pub fn plan_ports(
    svc: &Service,
    deployments: &[Deployment],
    others: &[OtherWorkload],
    ports: &[PortSpec],
) -> Result<Vec<Target>, InterceptError> {
    let mut targets: Vec<Target> = Vec::with_capacity(ports.len());
    for port in ports {
        let t = plan(svc, deployments, others, port)?;
        if targets.iter().any(|o| o.service_port == t.service_port) {
            return Err(InterceptError::SamePort {
                service: t.service,
                port: t.service_port,
            });
        }
        targets.push(t);
    }
    Ok(targets)
}

/// Finds what `port` means for `svc` (taken as [`original_service`]): the Service port
/// it names (the only one when it names none), the one Deployment whose pods the Service
/// selects, and the container and port that Service port leads to.
pub fn plan(
    svc: &Service,
    deployments: &[Deployment],
    others: &[OtherWorkload],
    port: &PortSpec,
) -> Result<Target, InterceptError> {
    let svc = original_service(svc);
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
    let deployment_name = name(&deployment.metadata.name).to_owned();
    // One agent per Deployment: it serves one Service.
    if let Some(other) = annotation(&deployment.metadata.annotations, FOR_SERVICE) {
        if other != svc_name {
            return Err(InterceptError::OtherService {
                deployment: deployment_name,
                service: other.to_owned(),
            });
        }
    }
    // The app's containers: the agent (when installed) is not one of them.
    let containers: Vec<Container> = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.name != AGENT_CONTAINER)
        .collect();
    let ports = spec.and_then(|s| s.ports.clone()).unwrap_or_default();
    // Resolve each Service port to (container, container port).
    let resolved: Vec<Option<(String, u16)>> = ports
        .iter()
        .map(|p| resolve_target(p.target_port.as_ref(), p.port, &containers))
        .collect();
    let served: Vec<String> = ports
        .iter()
        .zip(&resolved)
        .map(|(p, r)| {
            let label = match &p.name {
                Some(n) if !n.is_empty() => format!("{} ({n})", p.port),
                _ => p.port.to_string(),
            };
            match r {
                Some((_, n)) => format!("{label} → {n}"),
                None => label,
            }
        })
        .collect();
    let index = match &port.remote {
        None if ports.len() == 1 => 0,
        None => {
            return Err(InterceptError::WhichPort {
                service: svc_name,
                local: port.local,
                served: ports
                    .iter()
                    .map(|p| p.name.clone().unwrap_or_else(|| p.port.to_string()))
                    .collect(),
            });
        }
        // A Service port's number; else (as before) the container port it leads to.
        Some(Remote::Number(n)) => ports
            .iter()
            .position(|p| p.port == i32::from(*n))
            .or_else(|| {
                resolved
                    .iter()
                    .position(|r| r.as_ref().is_some_and(|(_, c)| c == n))
            })
            .ok_or_else(|| InterceptError::PortNotServed {
                service: svc_name.clone(),
                port: n.to_string(),
                served: served.clone(),
            })?,
        // A Service port's name; else the container port name its targetPort gives.
        Some(Remote::Name(wanted)) => ports
            .iter()
            .position(|p| p.name.as_deref() == Some(wanted.as_str()))
            .or_else(|| {
                ports
                    .iter()
                    .position(|p| p.target_port == Some(IntOrString::String(wanted.clone())))
            })
            .ok_or_else(|| InterceptError::PortNotServed {
                service: svc_name.clone(),
                port: wanted.clone(),
                served: served.clone(),
            })?,
    };
    let (container, app_port) =
        resolved[index]
            .clone()
            .ok_or_else(|| InterceptError::PortNotServed {
                service: svc_name.clone(),
                port: ports[index].port.to_string(),
                served: vec![format!(
                    "{} (its targetPort names no port of Deployment {deployment_name})",
                    ports[index].port,
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
        original_target_port: ports[index].target_port.clone(),
        app_port,
        deployment: deployment_name,
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

/// Free ports for the agent, one per intercepted port and the control port, avoiding
/// every port the pod's containers declare, init containers and native sidecars included
/// (they share the pod's network), and the app ports.
pub fn agent_ports(d: &Deployment, app_ports: &[u16]) -> (Vec<u16>, u16) {
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let used: Vec<u16> = pod
        .into_iter()
        .flat_map(|p| {
            p.containers
                .iter()
                .chain(p.init_containers.iter().flatten())
        })
        .filter(|c| c.name != AGENT_CONTAINER)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .chain(app_ports.iter().copied())
        .collect();
    // A pod declaring every port from 9900 up cannot be: the range does not run out.
    let mut free = (AGENT_PORT..u16::MAX).filter(|p| !used.contains(p));
    let listen = app_ports.iter().filter_map(|_| free.next()).collect();
    let control = free.next().unwrap_or(u16::MAX);
    (listen, control)
}

/// What is installed for a Service, from its annotation.
pub fn installed(svc: &Service) -> Option<Installed> {
    Installed::parse(annotation(&svc.metadata.annotations, INTERCEPT)?)
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
                    "spec": {
                        "initContainers": [
                            {"name": "proxy", "image": "p:1", "restartPolicy": "Always",
                             "ports": [{"containerPort": 9901}]},
                        ],
                        "containers": [
                            {"name": "payments", "image": "payments:1",
                             "ports": [{"name": "http", "containerPort": 8080}]},
                            {"name": "metrics", "image": "m:1", "ports": [{"containerPort": 9900}]},
                        ]
                    }
                }
            }
        }))
        .unwrap()
    }

    /// A Service of a metrics port (to the `metrics` container) and a web port (`http`).
    fn two_port_service() -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "payments-svc", "namespace": "api"},
            "spec": {
                "selector": {"app": "payments"},
                "ports": [
                    {"name": "metrics", "port": 9090, "targetPort": 9900},
                    {"name": "web", "port": 80, "targetPort": "http"},
                ],
            }
        }))
        .unwrap()
    }

    fn port(text: &str) -> PortSpec {
        PortSpec::parse(text).unwrap()
    }

    #[test]
    fn ports_parse_as_local_and_an_optional_service_port() {
        assert_eq!(
            port("18777"),
            PortSpec {
                local: 18777,
                remote: None
            }
        );
        assert_eq!(port("18777:80").remote, Some(Remote::Number(80)));
        assert_eq!(port("18777:http").remote, Some(Remote::Name("http".into())));
        for bad in ["", "x", "0", "18777:", "18777:0", "70000", "1:a b", "1:2:3"] {
            assert!(
                matches!(PortSpec::parse(bad), Err(InterceptError::BadPort(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_local_port_need_not_be_a_port_of_the_service() {
        // The bug: `--port 18777` was looked up among the Service's ports.
        let svc = service(serde_json::json!("http"));
        let ds = [deployment("payments", "payments")];
        let t = plan(&svc, &ds, &[], &port("18777")).unwrap();
        assert_eq!((t.service_port, t.app_port), (80, 8080));
    }

    #[test]
    fn a_named_target_port_resolves_through_the_deployment() {
        let svc = service(serde_json::json!("http"));
        let ds = [
            deployment("other", "orders"),
            deployment("payments", "payments"),
        ];
        for remote in ["1:8080", "1:80", "1:http"] {
            let t = plan(&svc, &ds, &[], &port(remote)).unwrap();
            assert_eq!(
                (
                    t.deployment.as_str(),
                    t.container.as_str(),
                    t.app_port,
                    t.service_port,
                    t.original_target_port.clone(),
                ),
                (
                    "payments",
                    "payments",
                    8080,
                    80,
                    Some(IntOrString::String("http".into()))
                ),
                "{remote}"
            );
        }
        let err = plan(&svc, &ds, &[], &port("1:3000")).unwrap_err();
        assert!(err.to_string().contains("80 (http) → 8080"), "{err}");
        assert!(err.is_bad_input());
    }

    #[test]
    fn several_service_ports_need_a_remote_and_pick_by_name_or_number() {
        let svc = two_port_service();
        let ds = [deployment("payments", "payments")];
        let err = plan(&svc, &ds, &[], &port("18777")).unwrap_err();
        assert!(
            matches!(err, InterceptError::WhichPort { .. })
                && err.to_string().contains("-p 18777:metrics"),
            "{err}"
        );
        let t = plan(&svc, &ds, &[], &port("18777:web")).unwrap();
        assert_eq!((t.port_index, t.app_port), (1, 8080));
        let t = plan(&svc, &ds, &[], &port("18777:9090")).unwrap();
        assert_eq!(
            (t.port_index, t.container.as_str(), t.app_port),
            (0, "metrics", 9900)
        );
    }

    #[test]
    fn other_kinds_ambiguity_and_a_second_service_are_refused_in_words() {
        let svc = service(serde_json::json!(8080));
        let err = plan(
            &svc,
            &[],
            &[OtherWorkload {
                kind: "StatefulSet".into(),
                name: "payments".into(),
            }],
            &port("8080"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("StatefulSet payments"), "{err}");
        let two = [deployment("a", "payments"), deployment("b", "payments")];
        assert!(matches!(
            plan(&svc, &two, &[], &port("8080")),
            Err(InterceptError::ManyWorkloads { .. })
        ));
        // Two Services on one Deployment: the agent serves the first one only.
        let mut d = deployment("payments", "payments");
        d.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(FOR_SERVICE.into(), "payments-admin".into());
        let err = plan(&svc, &[d], &[], &port("8080")).unwrap_err();
        assert!(
            err.to_string().contains("for Service `payments-admin`") && err.is_bad_input(),
            "{err}"
        );
    }

    #[test]
    fn agent_ports_avoid_native_sidecars_and_planning_sees_through_an_intercept() {
        let svc = service(serde_json::json!("http"));
        let d = deployment("payments", "payments");
        assert_eq!(
            agent_ports(&d, &[8080]),
            (vec![9902], 9903),
            "9900 and 9901 are taken"
        );
        assert_eq!(agent_ports(&d, &[8080, 9902]), (vec![9903, 9904], 9905));
        // An intercepted Service plans as its original.
        let mut s2 = svc.clone();
        s2.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port =
            Some(IntOrString::Int(9902));
        let record = Installed {
            deployment: "payments".into(),
            container: "payments".into(),
            ports: vec![InterceptedPort {
                service_port: 80,
                app_port: 8080,
                agent_port: 9902,
                original_target_port: Some(IntOrString::String("http".into())),
            }],
            control_port: 9903,
            image: "agent:1".into(),
        };
        s2.metadata.annotations = Some(
            [(
                INTERCEPT.to_owned(),
                serde_json::to_string(&record).unwrap(),
            )]
            .into(),
        );
        assert_eq!(
            plan(&s2, std::slice::from_ref(&d), &[], &port("1")).unwrap(),
            plan(&svc, &[d], &[], &port("1")).unwrap()
        );
        assert_eq!(installed(&s2), Some(record));
    }

    #[test]
    fn several_ports_plan_each_and_the_same_service_port_twice_is_refused() {
        let svc = two_port_service();
        let ds = [deployment("payments", "payments")];
        let ts = plan_ports(&svc, &ds, &[], &[port("18777:web"), port("18778:9090")]).unwrap();
        let got: Vec<_> = ts
            .iter()
            .map(|t| (t.service_port, t.container.as_str(), t.app_port))
            .collect();
        assert_eq!(got, [(80, "payments", 8080), (9090, "metrics", 9900)]);
        let err = plan_ports(&svc, &ds, &[], &[port("1:web"), port("2:80")]).unwrap_err();
        assert!(
            matches!(err, InterceptError::SamePort { port: 80, .. }) && err.is_bad_input(),
            "{err}"
        );
    }

    #[test]
    fn a_one_port_record_of_an_earlier_version_still_reads() {
        let old = r#"{"deployment":"payments","container":"payments","service_port":80,
            "app_port":8080,"agent_port":9902,"control_port":9903,"image":"agent:1",
            "original_target_port":"http"}"#;
        let record = Installed::parse(old).unwrap();
        assert_eq!(record.service_ports(), [80]);
        assert_eq!(record.ports[0].agent_port, 9902);
        assert_eq!(
            record.ports[0].original_target_port,
            Some(IntOrString::String("http".into()))
        );
        let now = serde_json::to_string(&record).unwrap();
        assert_eq!(Installed::parse(&now), Some(record));
        assert_eq!(Installed::parse(r#"{"ports":[]}"#), None);
    }
}
