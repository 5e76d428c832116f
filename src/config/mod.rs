//! `tether.toml`: the one file a service folder declares itself in.
//!
//! Layout:
//! - [`schema`]: the raw shape of one file, exactly as serde reads it (unknown keys are errors).
//! - [`load`]: reads a file and the files it includes, resolves paths, and validates the
//!   whole into a [`Project`], the only type the rest of tether sees.
//! - [`live`]: an image's live-update rules (sync, run, restart, fall back), validated.
//! - [`profile`]: `[profiles.NAME]`, one namespace per developer, and its quota.
//! - [`overrides`]: `[profiles.NAME.set.RESOURCE]`, values a profile sets over manifests.
//! - [`location`]: turns byte offsets into `file:line:col`, so every error points at its cause.
//! - [`suggest`]: "did you mean" for an unknown key (the policy file's too).
//! - [`json_schema`]: the file's JSON Schema, derived from [`schema`], for editors.
//!
//! Paths in a file are relative to that file's folder; a [`Project`] holds them absolute.

mod json_schema;
mod live;
mod load;
mod location;
mod overrides;
mod profile;
mod schema;
mod suggest;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

pub use json_schema::json_schema;
pub use live::{LiveUpdate, PathPattern, RunRule, SyncRule};
pub use load::{ConfigError, load};
pub use location::Location;
pub use overrides::Overrides;
pub use profile::{Profile, ProfileRun, dns_safe, is_dns_label, known as known_profiles};
pub use suggest::unknown_key;

/// The file name tether looks for in a service folder.
pub const FILE_NAME: &str = "tether.toml";

/// A validated project: the root file plus everything it includes.
#[derive(Debug, Clone)]
pub struct Project {
    /// The folder holding the root `tether.toml`; `.tether/` state lives here.
    pub root: PathBuf,
    /// Kube contexts that do not look local but may be deployed to anyway (root file only,
    /// so an included file can never widen where a parent deploys).
    pub allow_contexts: Vec<String>,
    /// Where images are pushed; `None` means discover it from the cluster.
    pub registry: Option<String>,
    /// Images by name; the name is what manifests write in `image:` fields.
    pub images: BTreeMap<String, Image>,
    /// Resources by name, the units that are deployed, watched and reported.
    pub resources: BTreeMap<String, Resource>,
    /// Environments by name (root file only), chosen with `--profile`.
    pub profiles: BTreeMap<String, Profile>,
    /// The profile a run uses when none is named.
    pub default_profile: Option<String>,
}

impl Project {
    /// The project's `tether.toml` files: the root one and every file that declares an
    /// image or a resource.
    pub fn config_files(&self) -> std::collections::BTreeSet<PathBuf> {
        let mut files = std::collections::BTreeSet::from([self.root.join(FILE_NAME)]);
        files.extend(self.images.values().map(|i| i.declared_at.file.clone()));
        files.extend(self.resources.values().map(|r| r.declared_at.file.clone()));
        files
    }
}

/// How one image is built.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    /// The build context sent to the engine.
    pub context: PathBuf,
    /// The Dockerfile, inside or outside the context.
    pub dockerfile: PathBuf,
    /// A command run on the host before the image build (for example a static `cargo build`
    /// whose output the Dockerfile copies), in the folder of the file that declared it.
    pub host_build: Option<HostBuild>,
    /// Files and folders whose content decides whether a build is needed. Defaults to the context.
    pub inputs: Vec<PathBuf>,
    /// How a change reaches running containers without a build, if it may.
    pub live_update: Option<LiveUpdate>,
    /// Where the declaration is, for messages.
    pub declared_at: Location,
}

/// A command run on the host as part of an image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBuild {
    pub argv: Vec<String>,
    pub dir: PathBuf,
}

/// A deployable unit: manifests, the images they use, forwards, dependencies.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    /// Namespace for objects that name none.
    pub namespace: String,
    /// Put every namespaced object into `namespace`, also those that name their own, and
    /// leave out the manifests' Namespace objects: a profile's run stays in its namespace.
    pub force_namespace: bool,
    /// Where its objects come from, in apply order.
    pub manifests: Vec<Manifests>,
    /// Resources that must be ready before this one is deployed.
    pub depends_on: Vec<String>,
    pub port_forwards: Vec<PortForward>,
    /// Run in a ready pod until it exits 0; only then is the resource ready.
    pub ready_cmd: Option<Vec<String>>,
    /// Run in a ready pod every few seconds; its output is the resource's status panel.
    pub status_cmd: Option<Vec<String>>,
    /// What the run's profile sets over the rendered objects (none outside a profile).
    pub overrides: Overrides,
    pub declared_at: Location,
}

impl Resource {
    /// Whether a change of `path` changes what this resource renders: one of its YAML
    /// files, or a file inside its kustomization or chart, or one of its values files.
    pub fn renders_from(&self, path: &Path) -> bool {
        self.manifests
            .iter()
            .flat_map(Manifests::inputs)
            .any(|input| path.starts_with(input))
    }
}

/// Where a resource's objects come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifests {
    /// A YAML file, of one or more documents.
    File(PathBuf),
    /// A folder with a `kustomization.yaml`, rendered as `kubectl kustomize` renders it.
    Kustomize(PathBuf),
    /// A Helm chart, rendered by `helm template`.
    Helm(HelmChart),
    /// Objects tether makes itself (a profile's namespace and quota), from no file.
    Objects(Vec<serde_json::Value>),
}

impl Manifests {
    /// The files and folders whose change changes what this renders (watched, and
    /// matched against change sets by prefix).
    pub fn inputs(&self) -> Vec<&Path> {
        match self {
            Manifests::File(p) | Manifests::Kustomize(p) => vec![p],
            Manifests::Helm(h) => std::iter::once(h.chart.as_path())
                .chain(h.values.iter().map(PathBuf::as_path))
                .collect(),
            Manifests::Objects(_) => Vec::new(),
        }
    }
}

/// `helm = { chart, values, set, release }` of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmChart {
    pub chart: PathBuf,
    /// Values files, in order (`-f`).
    pub values: Vec<PathBuf>,
    /// Single values (`--set-string`).
    pub set: BTreeMap<String, String>,
    pub release: String,
}

/// `local` on the laptop to `remote` on a ready pod of the resource's workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    pub local: u16,
    pub remote: u16,
}

impl Project {
    /// Reads `tether.toml` in `dir` and everything it includes.
    pub fn load(dir: &Path) -> Result<Project, ConfigError> {
        load(&dir.join(FILE_NAME))
    }

    /// Resource names in an order where each comes after what it depends on.
    pub fn deploy_order(&self) -> Vec<&str> {
        let mut order = Vec::new();
        let mut done = std::collections::BTreeSet::new();
        fn visit<'a>(
            p: &'a Project,
            name: &'a str,
            done: &mut std::collections::BTreeSet<&'a str>,
            order: &mut Vec<&'a str>,
        ) {
            if !done.insert(name) {
                return;
            }
            if let Some(r) = p.resources.get(name) {
                for dep in &r.depends_on {
                    visit(p, dep, done, order);
                }
            }
            order.push(name);
        }
        for name in self.resources.keys() {
            visit(self, name, &mut done, &mut order);
        }
        order
    }
}
