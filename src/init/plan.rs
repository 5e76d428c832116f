//! The pure decisions of `tether init`: from a [`Scan`] to the images, resources,
//! namespace and port forwards a first `tether.toml` declares, with the reasons the
//! rendered file shows as comments.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::DynamicObject;
use serde_json::Value;

use super::Scan;
use crate::deploy::manifest;

/// What the generated file declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The folder's name, for the file's first line.
    pub folder_name: String,
    pub namespace: Namespace,
    pub images: Vec<ImagePlan>,
    /// Images the workloads use that no Dockerfile here builds: pulled as they are.
    pub unbuilt: Vec<Unbuilt>,
    pub resources: Vec<ResourcePlan>,
    /// Sibling folders to `include`, for what the manifests here need and they create.
    pub includes: Vec<Include>,
    /// Things the user should know that no key can say (a Secret nothing here creates).
    pub notes: Vec<String>,
    /// YAML files that are not manifests, and why.
    pub skipped: Vec<(String, String)>,
}

/// The namespace of objects that name none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Every namespaced object that names one names this.
    Agreed(String),
    /// No object names one: tether's default (`default`) applies.
    Unset,
    /// The objects name several: each keeps its own, and the file sets none.
    Disagree(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    /// The `[images.NAME]` key: what `image:` fields must name for tether to pin them.
    pub name: String,
    pub context: String,
    pub dockerfile: String,
    /// The repositories the manifests write that led here, when one is not `name`.
    pub written_as: Vec<String>,
    /// The folder's other Dockerfiles, in case another one is meant.
    pub other_dockerfiles: Vec<String>,
}

/// A sibling folder whose tether.toml joins the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// `../base`.
    pub path: String,
    /// What it creates that the manifests here need: `Namespace api`.
    pub provides: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbuilt {
    pub image: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePlan {
    pub name: String,
    /// `Deployment users`, `Service users-svc`: what its manifests hold, for a comment.
    pub objects: Vec<String>,
    pub manifests: Vec<String>,
    pub depends_on: Vec<String>,
    pub port_forwards: Vec<Forward>,
}

/// `local` on the laptop to `remote` on the workload's pod, from one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub local: u16,
    pub remote: u16,
    /// Where it comes from and why the local port is what it is.
    pub why: String,
}

/// Kinds that run pods from a template: what a resource is made around.
const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"];
/// Kinds that live in no namespace, so they have no say in the file's `namespace`.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
];
/// Ports below this need root to listen on; their forwards listen 8000 higher.
const PRIVILEGED_BELOW: u16 = 1024;
const PRIVILEGED_SHIFT: u16 = 8000;
/// The Dockerfiles taken, in this order, for the folder's image when there are several.
const PREFERRED_DOCKERFILES: &[&str] = &["Dockerfile.tether", "Dockerfile"];

/// One workload as found in the manifests.
struct Workload<'a> {
    kind: &'a str,
    name: String,
    file: usize,
    obj: &'a DynamicObject,
}

impl Workload<'_> {
    fn label(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }

    /// The pod template's labels, which a Service's selector must all match.
    fn pod_labels(&self) -> BTreeMap<String, String> {
        let template = if self.kind == "CronJob" {
            "/spec/jobTemplate/spec/template/metadata/labels"
        } else {
            "/spec/template/metadata/labels"
        };
        strings(self.obj.data.pointer(template))
    }

    /// Container port numbers by name, to resolve a Service's named `targetPort`.
    fn named_port(&self, name: &str) -> Option<u16> {
        let mut data = self.obj.data.clone();
        let spec = manifest::pod_spec_mut(&mut data)?;
        spec.get("containers")?
            .as_array()?
            .iter()
            .filter_map(|c| c.get("ports")?.as_array())
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort")?.as_u64())
            .and_then(|p| u16::try_from(p).ok())
    }
}

/// Decides what the file declares. Pure: the same scan always gives the same plan.
pub fn plan(scan: &Scan) -> Plan {
    let mut notes = Vec::new();
    let workloads: Vec<Workload> = scan
        .manifests
        .iter()
        .enumerate()
        .flat_map(|(file, m)| m.objects.iter().map(move |obj| (file, obj)))
        .filter_map(|(file, obj)| {
            let kind = obj.types.as_ref()?.kind.as_str();
            WORKLOADS.contains(&kind).then(|| Workload {
                kind,
                name: obj.metadata.name.clone().unwrap_or_default(),
                file,
                obj,
            })
        })
        .collect();

    // One resource per workload whose file no earlier workload took; a file is applied
    // by exactly one resource, so a second workload in it goes with the first.
    let mut owner: BTreeMap<usize, usize> = BTreeMap::new();
    let mut resources: Vec<ResourcePlan> = Vec::new();
    let mut resource_of_workload = Vec::new();
    let mut taken = BTreeSet::new();
    for w in &workloads {
        let r = *owner.entry(w.file).or_insert_with(|| {
            let name = unique(&mut taken, &resource_name(&w.name), w.kind);
            resources.push(ResourcePlan {
                name,
                objects: Vec::new(),
                manifests: vec![scan.manifests[w.file].path.clone()],
                depends_on: Vec::new(),
                port_forwards: Vec::new(),
            });
            resources.len() - 1
        });
        resource_of_workload.push(r);
    }

    // Services go with the workload their selector matches, first in their own file.
    let mut used_ports = BTreeSet::new();
    for (file, m) in scan.manifests.iter().enumerate() {
        for svc in m.objects.iter().filter(|o| kind(o) == Some("Service")) {
            let svc_name = svc.metadata.name.clone().unwrap_or_default();
            let selector = strings(svc.data.pointer("/spec/selector"));
            let matches = |w: &&Workload| {
                let labels = w.pod_labels();
                !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            };
            let found = workloads
                .iter()
                .filter(|w| w.file == file)
                .find(matches)
                .or_else(|| workloads.iter().find(matches));
            let Some(w) = found else {
                continue;
            };
            let i = workloads
                .iter()
                .position(|x| std::ptr::eq(x, w))
                .unwrap_or(0);
            let r = resource_of_workload[i];
            if let std::collections::btree_map::Entry::Vacant(e) = owner.entry(file) {
                e.insert(r);
                resources[r].manifests.push(m.path.clone());
            }
            let forwards = forwards(svc, &svc_name, w, &mut used_ports, &mut notes);
            resources[r].port_forwards.extend(forwards);
        }
    }

    // What each resource's files hold, for its comment.
    for (file, m) in scan.manifests.iter().enumerate() {
        if let Some(&r) = owner.get(&file) {
            resources[r].objects.extend(m.objects.iter().map(describe));
        }
    }

    // Files of neither a workload nor its Service (a Namespace, a ConfigMap): applied
    // first, by the only resource, or by one of their own the others depend on.
    let shared: Vec<usize> = (0..scan.manifests.len())
        .filter(|f| !owner.contains_key(f))
        .collect();
    if !shared.is_empty() {
        let files: Vec<String> = shared
            .iter()
            .map(|&f| scan.manifests[f].path.clone())
            .collect();
        let objects: Vec<String> = shared
            .iter()
            .flat_map(|&f| scan.manifests[f].objects.iter().map(describe))
            .collect();
        if resources.len() == 1 {
            let r = &mut resources[0];
            r.manifests.splice(0..0, files);
            r.objects.splice(0..0, objects);
        } else {
            let base = unique(
                &mut taken,
                &format!("{}-base", resource_name(&scan.folder_name)),
                "shared",
            );
            for r in &mut resources {
                r.depends_on.push(base.clone());
            }
            resources.insert(
                0,
                ResourcePlan {
                    name: base,
                    objects,
                    manifests: files,
                    depends_on: Vec::new(),
                    port_forwards: Vec::new(),
                },
            );
        }
    }

    let (images, unbuilt) = images(scan, &workloads);
    let namespace = namespace(scan);
    let missing = missing_references(scan, &workloads, &namespace);
    let (includes, provided_by) = includes(scan, &missing);
    for r in &mut resources {
        r.depends_on.extend(provided_by.iter().cloned());
    }
    for (kind, name) in &missing {
        if includes
            .iter()
            .any(|i| i.provides.contains(&format!("{kind} {name}")))
        {
            continue;
        }
        notes.push(if kind == "Namespace" {
            format!(
                "no manifest here creates the Namespace `{name}`: add one, or `include` the folder whose tether.toml does"
            )
        } else {
            format!(
                "the workloads read the {kind} `{name}`, which no manifest here creates: add it, or `include` the folder whose tether.toml does"
            )
        });
    }
    Plan {
        folder_name: scan.folder_name.clone(),
        namespace,
        images,
        unbuilt,
        resources,
        includes,
        notes,
        skipped: scan.skipped.clone(),
    }
}

fn kind(obj: &DynamicObject) -> Option<&str> {
    obj.types.as_ref().map(|t| t.kind.as_str())
}

fn describe(obj: &DynamicObject) -> String {
    format!(
        "{} {}",
        kind(obj).unwrap_or("?"),
        obj.metadata.name.as_deref().unwrap_or("?")
    )
}

fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `name` is what `tether.toml` accepts as an image or resource name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A Kubernetes object name (which may hold dots) as a resource name.
fn resource_name(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(50);
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() { "app".to_owned() } else { s }
}

/// `name`, else `name-KIND`, else `name-KIND-2`…, never one already taken.
fn unique(taken: &mut BTreeSet<String>, name: &str, kind: &str) -> String {
    let mut candidate = name.to_owned();
    let mut n = 1;
    while taken.contains(&candidate) {
        n += 1;
        candidate = if n == 2 {
            format!("{name}-{}", kind.to_ascii_lowercase())
        } else {
            format!("{name}-{}-{n}", kind.to_ascii_lowercase())
        };
    }
    taken.insert(candidate.clone());
    candidate
}

/// The Service's TCP ports as forwards to the workload's pods: the local port is the
/// Service's (8000 higher below 1024, which needs root), moved up past any taken one.
fn forwards(
    svc: &DynamicObject,
    svc_name: &str,
    w: &Workload,
    used: &mut BTreeSet<u16>,
    notes: &mut Vec<String>,
) -> Vec<Forward> {
    let ports = svc
        .data
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in ports {
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        let Some(port) = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
        else {
            continue;
        };
        if protocol != "TCP" {
            notes.push(format!(
                "Service {svc_name} port {port} is {protocol}: port forwards carry TCP only"
            ));
            continue;
        }
        let remote = match p.get("targetPort") {
            None => Some(port),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(Value::String(name)) => name.parse().ok().or_else(|| w.named_port(name)),
            Some(_) => None,
        };
        let Some(remote) = remote else {
            notes.push(format!(
                "Service {svc_name} port {port}: its targetPort names no container port of {}, so it has no forward",
                w.label()
            ));
            continue;
        };
        let mut local = port;
        let mut why = format!(
            "Service {svc_name} port {port} -> {} port {remote}",
            w.label()
        );
        if local < PRIVILEGED_BELOW {
            local = port.saturating_add(PRIVILEGED_SHIFT);
            why.push_str(&format!("; local {local}, as ports below 1024 need root"));
        }
        let wanted = local;
        while used.contains(&local) && local < u16::MAX {
            local += 1;
        }
        if local != wanted {
            why.push_str(&format!("; local {local}, as {wanted} is taken above"));
        }
        used.insert(local);
        out.push(Forward { local, remote, why });
    }
    out
}

/// A reference's repository: without its digest and tag (`host:5000/team/app:1.2`
/// → `host:5000/team/app`), the same cut `tether up` makes before it pins an image.
fn repository(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => no_digest,
    }
}

/// The Dockerfile that builds the image whose repository ends in `component`.
fn dockerfile_for<'a>(scan: &'a Scan, component: &str) -> Option<&'a str> {
    let named = [
        format!("Dockerfile.{component}"),
        format!("{component}.Dockerfile"),
        format!("{component}.dockerfile"),
    ];
    if let Some(d) = scan.dockerfiles.iter().find(|d| named.contains(d)) {
        return Some(d);
    }
    if component != scan.folder_name.to_ascii_lowercase() {
        return None;
    }
    match scan.dockerfiles.as_slice() {
        [only] => Some(only),
        several => PREFERRED_DOCKERFILES
            .iter()
            .find_map(|p| several.iter().find(|d| d == p))
            .map(String::as_str),
    }
}

fn images(scan: &Scan, workloads: &[Workload]) -> (Vec<ImagePlan>, Vec<Unbuilt>) {
    let mut images: BTreeMap<String, ImagePlan> = BTreeMap::new();
    let mut unbuilt: BTreeMap<String, Unbuilt> = BTreeMap::new();
    for w in workloads {
        for reference in container_images(w.obj) {
            let repo = repository(&reference).to_owned();
            let component = repo.rsplit('/').next().unwrap_or(&repo).to_owned();
            let Some(dockerfile) = dockerfile_for(scan, &component) else {
                unbuilt.entry(reference.clone()).or_insert(Unbuilt {
                    image: reference,
                    why: format!("no Dockerfile here is named for `{component}`"),
                });
                continue;
            };
            if !valid_name(&component) {
                unbuilt.entry(reference.clone()).or_insert(Unbuilt {
                    image: reference,
                    why: format!(
                        "`{component}` is not an image name tether.toml takes (lower-case letters, digits, '-')"
                    ),
                });
                continue;
            }
            let image = images
                .entry(component.clone())
                .or_insert_with(|| ImagePlan {
                    name: component.clone(),
                    context: ".".to_owned(),
                    dockerfile: dockerfile.to_owned(),
                    written_as: Vec::new(),
                    other_dockerfiles: scan
                        .dockerfiles
                        .iter()
                        .filter(|d| *d != dockerfile)
                        .cloned()
                        .collect(),
                });
            if repo != component && !image.written_as.contains(&repo) {
                image.written_as.push(repo);
            }
        }
    }
    (
        images.into_values().collect(),
        unbuilt.into_values().collect(),
    )
}

/// Every `image:` of a workload's containers and init containers, as written.
fn container_images(obj: &DynamicObject) -> Vec<String> {
    let mut data = obj.data.clone();
    let Some(spec) = manifest::pod_spec_mut(&mut data) else {
        return Vec::new();
    };
    ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn namespace(scan: &Scan) -> Namespace {
    let named: BTreeSet<String> = scan
        .manifests
        .iter()
        .flat_map(|m| &m.objects)
        .filter(|o| !kind(o).is_some_and(|k| CLUSTER_SCOPED.contains(&k)))
        .filter_map(|o| o.metadata.namespace.clone())
        .collect();
    match named.len() {
        0 => Namespace::Unset,
        1 => {
            let ns = named.into_iter().next().unwrap_or_default();
            if valid_name(&ns) {
                Namespace::Agreed(ns)
            } else {
                Namespace::Disagree(vec![ns])
            }
        }
        _ => Namespace::Disagree(named.into_iter().collect()),
    }
}

/// Namespaces, Secrets and ConfigMaps the workloads need that no manifest here creates,
/// as (kind, name): `tether up` would wait on them.
fn missing_references(
    scan: &Scan,
    workloads: &[Workload],
    namespace: &Namespace,
) -> Vec<(String, String)> {
    let defined: BTreeSet<(String, String)> = scan
        .manifests
        .iter()
        .flat_map(|m| &m.objects)
        .filter_map(|o| Some((kind(o)?.to_owned(), o.metadata.name.clone()?)))
        .collect();
    let mut missing = Vec::new();
    if let Namespace::Agreed(ns) = namespace
        && ns != "default"
    {
        missing.push(("Namespace".to_owned(), ns.clone()));
    }
    let mut wanted = BTreeSet::new();
    for w in workloads {
        references(&w.obj.data, &mut wanted);
    }
    missing.extend(wanted);
    missing.retain(|m| !defined.contains(m));
    missing
}

/// The sibling folders whose own resources create some of `missing`, and those
/// resources' names (which every resource here then depends on, so they come first).
fn includes(scan: &Scan, missing: &[(String, String)]) -> (Vec<Include>, Vec<String>) {
    let mut left: BTreeSet<&(String, String)> = missing.iter().collect();
    let mut includes = Vec::new();
    let mut depends = Vec::new();
    for n in &scan.neighbours {
        let mut provides = Vec::new();
        for (resource, objects) in &n.resources {
            let covered: Vec<_> = left
                .iter()
                .filter(|m| objects.contains(m))
                .copied()
                .collect();
            if covered.is_empty() {
                continue;
            }
            depends.push(resource.clone());
            for m in covered {
                provides.push(format!("{} {}", m.0, m.1));
                left.remove(m);
            }
        }
        if !provides.is_empty() {
            includes.push(Include {
                path: n.path.clone(),
                provides,
            });
        }
    }
    (includes, depends)
}

/// The Secrets and ConfigMaps a pod spec names (env, envFrom, volumes), wherever they are.
fn references(v: &Value, out: &mut BTreeSet<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                let name = |field: &str| child.get(field).and_then(Value::as_str);
                let found = match key.as_str() {
                    "secretKeyRef" | "secretRef" => name("name").map(|n| ("Secret", n)),
                    "secret" => name("secretName").map(|n| ("Secret", n)),
                    "configMapKeyRef" | "configMapRef" | "configMap" => {
                        name("name").map(|n| ("ConfigMap", n))
                    }
                    _ => None,
                };
                let optional = child.get("optional").and_then(Value::as_bool) == Some(true);
                if let (Some((k, n)), false) = (found, optional) {
                    out.insert((k.to_owned(), n.to_owned()));
                }
                references(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{neighbours::Neighbour, scan::ManifestFile};

    fn scan_of(folder: &str, dockerfiles: &[&str], files: &[(&str, &str)]) -> Scan {
        Scan {
            dir: folder.into(),
            folder_name: folder.to_owned(),
            dockerfiles: dockerfiles.iter().map(|d| (*d).to_owned()).collect(),
            manifests: files
                .iter()
                .map(|(path, text)| ManifestFile {
                    path: (*path).to_owned(),
                    objects: manifest::parse(path, text).unwrap(),
                })
                .collect(),
            skipped: Vec::new(),
            neighbours: Vec::new(),
        }
    }

    fn deployment(name: &str, image: &str, port: u16) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: {name}\n          image: {image}\n          ports:\n            - name: http\n              containerPort: {port}\n"
        )
    }

    fn service(name: &str, app: &str, port: u16, target: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {app}\n  ports:\n    - port: {port}\n      targetPort: {target}\n"
        )
    }

    #[test]
    fn images_are_those_a_dockerfile_here_is_named_for() {
        let web = deployment("web", "ghcr.io/acme/web:1.2", 8080);
        let worker = deployment("worker", "worker", 9000);
        let redis = deployment("redis", "redis:7", 6379);
        let s = scan_of(
            "shop",
            &["Dockerfile", "Dockerfile.worker", "web.Dockerfile"],
            &[
                ("web.yaml", &web),
                ("worker.yaml", &worker),
                ("redis.yaml", &redis),
            ],
        );
        let p = plan(&s);
        let names: Vec<_> = p
            .images
            .iter()
            .map(|i| (i.name.as_str(), i.dockerfile.as_str()))
            .collect();
        assert_eq!(
            names,
            [("web", "web.Dockerfile"), ("worker", "Dockerfile.worker")]
        );
        assert_eq!(p.images[0].written_as, ["ghcr.io/acme/web"]);
        assert_eq!(p.unbuilt.len(), 1);
        assert_eq!(p.unbuilt[0].image, "redis:7");
    }

    #[test]
    fn the_folders_image_takes_its_only_dockerfile_or_the_tether_one() {
        let app = deployment("app", "registry:5000/app@sha256:abc", 80);
        let one = scan_of("app", &["Dockerfile.prod"], &[("a.yaml", &app)]);
        assert_eq!(plan(&one).images[0].dockerfile, "Dockerfile.prod");
        let several = scan_of(
            "app",
            &["Dockerfile", "Dockerfile.tether"],
            &[("a.yaml", &app)],
        );
        let p = plan(&several);
        assert_eq!(p.images[0].dockerfile, "Dockerfile.tether");
        assert_eq!(p.images[0].other_dockerfiles, ["Dockerfile"]);
        assert_eq!(p.images[0].written_as, ["registry:5000/app"]);
    }

    #[test]
    fn a_service_goes_with_the_workload_it_selects_and_ports_never_collide() {
        let a = deployment("a", "a", 8080);
        let b = deployment("b", "b", 8080);
        let svcs = format!(
            "{}---\n{}",
            service("b-svc", "b", 80, "http"),
            service("a-svc", "a", 80, "8080")
        );
        let ns = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n";
        let s = scan_of(
            "two",
            &["Dockerfile"],
            &[
                ("k8s/a.yaml", &a),
                ("k8s/b.yaml", &b),
                ("k8s/cm.yaml", ns),
                ("k8s/svc.yaml", &svcs),
            ],
        );
        let p = plan(&s);
        let rs: Vec<_> = p
            .resources
            .iter()
            .map(|r| (r.name.as_str(), r.manifests.clone(), r.depends_on.clone()))
            .collect();
        assert_eq!(
            rs,
            [
                ("two-base", vec!["k8s/cm.yaml".to_owned()], vec![]),
                (
                    "a",
                    vec!["k8s/a.yaml".to_owned()],
                    vec!["two-base".to_owned()]
                ),
                (
                    "b",
                    vec!["k8s/b.yaml".to_owned(), "k8s/svc.yaml".to_owned()],
                    vec!["two-base".to_owned()]
                ),
            ]
        );
        let fwd = |r: &ResourcePlan| {
            r.port_forwards
                .iter()
                .map(|f| (f.local, f.remote))
                .collect::<Vec<_>>()
        };
        assert_eq!(fwd(&p.resources[2]), [(8080, 8080)]);
        assert_eq!(fwd(&p.resources[1]), [(8081, 8080)]);
        assert!(
            p.resources[1].port_forwards[0]
                .why
                .contains("8080 is taken")
        );
    }

    #[test]
    fn the_namespace_is_set_only_when_the_manifests_agree() {
        let with_ns = |ns: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c-{ns}\n  namespace: {ns}\n"
            )
        };
        let nsobj = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: api\n";
        let d = deployment("d", "d", 1);
        let agreed = scan_of(
            "d",
            &["Dockerfile"],
            &[
                ("a.yaml", &with_ns("api")),
                ("n.yaml", nsobj),
                ("d.yaml", &d),
            ],
        );
        let p = plan(&agreed);
        assert_eq!(p.namespace, Namespace::Agreed("api".into()));
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let two = scan_of(
            "d",
            &["Dockerfile"],
            &[
                ("a.yaml", &with_ns("api")),
                ("b.yaml", &with_ns("web")),
                ("d.yaml", &d),
            ],
        );
        assert_eq!(
            plan(&two).namespace,
            Namespace::Disagree(vec!["api".into(), "web".into()])
        );
        let none = scan_of("d", &["Dockerfile"], &[("d.yaml", &d)]);
        assert_eq!(plan(&none).namespace, Namespace::Unset);
    }

    #[test]
    fn references_nothing_here_creates_are_noted() {
        let d = deployment("d", "d", 1).replace(
            "          ports:",
            "          envFrom:\n            - secretRef:\n                name: creds\n            - configMapRef:\n                name: maybe\n                optional: true\n          ports:",
        );
        let p = plan(&scan_of("d", &["Dockerfile"], &[("d.yaml", &d)]));
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains("Secret `creds`"));
    }

    #[test]
    fn a_sibling_that_creates_what_is_missing_is_included_and_waited_for() {
        let d = deployment("d", "d", 1).replace(
            "          ports:",
            "          envFrom:\n            - secretRef:\n                name: creds\n            - secretRef:\n                name: other\n          ports:",
        );
        let mut scan = scan_of("d", &["Dockerfile"], &[("d.yaml", &d)]);
        let creates = |objects: &[(&str, &str)]| {
            objects
                .iter()
                .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
                .collect()
        };
        scan.neighbours = vec![
            Neighbour {
                path: "../api".into(),
                resources: vec![("api".into(), creates(&[("Deployment", "api")]))],
            },
            Neighbour {
                path: "../base".into(),
                resources: vec![("shop-base".into(), creates(&[("Secret", "creds")]))],
            },
        ];
        let p = plan(&scan);
        assert_eq!(
            p.includes,
            [Include {
                path: "../base".into(),
                provides: vec!["Secret creds".into()],
            }]
        );
        assert_eq!(p.resources[0].depends_on, ["shop-base"]);
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains("Secret `other`"), "{:?}", p.notes);
    }
}
