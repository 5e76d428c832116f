//! The raw shape of one `tether.toml`, as serde reads it. Unknown keys are errors, so a
//! typo never silently does nothing. Spans are kept on every value a later check may
//! reject, so that check can point at it.
//!
//! The same types derive the file's JSON Schema (`tether schema`): a span is invisible in
//! the file, so each `Spanned<T>` is described as its `T` (`#[schemars(with)]`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// One `tether.toml`: a folder's namespace, images and resources, and the folders it includes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tether.toml")]
pub struct File {
    /// Default namespace for this file's resources.
    #[schemars(with = "Option<String>")]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_contexts: Vec<String>,
    #[schemars(with = "Option<String>")]
    pub registry: Option<Spanned<String>>,
    /// Folders (relative to this file) whose `tether.toml` joins this project.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ImageDecl>")]
    pub images: BTreeMap<String, Spanned<ImageDecl>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ResourceDecl>")]
    pub resources: BTreeMap<String, Spanned<ResourceDecl>>,
    /// Environments on a shared cluster, chosen with `tether up --profile NAME` (root
    /// file only).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ProfileDecl>")]
    pub profiles: BTreeMap<String, Spanned<ProfileDecl>>,
    /// The profile used when no `--profile` is given (root file only).
    #[schemars(with = "Option<String>")]
    pub default_profile: Option<Spanned<String>>,
}

/// `[profiles.NAME]`: every resource of the run in one namespace, optionally with a quota.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileDecl {
    /// The namespace for every resource of the run; `{user}` is who the API server says
    /// the credentials are, made DNS-safe (`dev-{user}`).
    #[schemars(with = "String")]
    pub namespace: Spanned<String>,
    /// Kube contexts this profile may deploy to besides `allow_contexts`.
    #[serde(default)]
    pub contexts: Vec<String>,
    /// The `hard` limits of a ResourceQuota `tether-quota` in the namespace
    /// (`{ pods = "10", "requests.memory" = "1Gi" }`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub quota: BTreeMap<String, Spanned<String>>,
    /// Requests and limits for containers that name none (a LimitRange `tether-defaults`),
    /// so a quota on cpu or memory admits them (`{ cpu = "100m", memory = "128Mi" }`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub defaults: BTreeMap<String, Spanned<String>>,
    /// A production environment: `up` asks for confirmation on a terminal, and refuses
    /// without one unless `--yes` is given.
    #[serde(default)]
    pub production: bool,
    /// Values set over what a resource's manifests say, per resource name
    /// (`[profiles.dev.set.web] replicas = 1`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, SetDecl>")]
    pub set: BTreeMap<String, Spanned<SetDecl>>,
    /// Resources of the project that every consumer of this profile shares: brought up
    /// by the first `up` that needs them, reused by the next, removed by the last `down`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub shared: Vec<Spanned<String>>,
    /// Where shared resources go when `namespace` names one per user (`{user}`): a
    /// shared instance must not land in one consumer's namespace.
    #[schemars(with = "Option<String>")]
    pub shared_namespace: Option<Spanned<String>>,
}

/// `[profiles.NAME.set.RESOURCE]`: what the profile sets over the resource's manifests.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDecl {
    /// `spec.replicas` of every Deployment and StatefulSet of the resource.
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Spanned<u32>>,
    /// Requests and limits of memory of every container (`"512Mi"`).
    #[schemars(with = "Option<String>")]
    pub memory: Option<Spanned<String>>,
    /// Requests and limits of cpu of every container (`"500m"`).
    #[schemars(with = "Option<String>")]
    pub cpu: Option<Spanned<String>>,
    /// Environment variables of every container, replacing those of the same name.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `--set-string` values for the resource's Helm chart, over its own `set`.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub helm: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageDecl {
    #[serde(default = "dot")]
    #[schemars(with = "String")]
    pub context: Spanned<String>,
    #[schemars(with = "Option<String>")]
    pub dockerfile: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub host_build: Option<Spanned<Vec<String>>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub inputs: Option<Vec<Spanned<String>>>,
    #[schemars(with = "Option<LiveUpdateDecl>")]
    pub live_update: Option<Spanned<LiveUpdateDecl>>,
}

/// `[images.NAME.live_update]`: how a change reaches running containers without a build.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveUpdateDecl {
    #[serde(default)]
    #[schemars(with = "Vec<SyncDecl>")]
    pub sync: Vec<Spanned<SyncDecl>>,
    #[serde(default)]
    #[schemars(with = "Vec<RunDecl>")]
    pub run: Vec<Spanned<RunDecl>>,
    #[serde(default)]
    pub restart: bool,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub fall_back_on: Vec<Spanned<String>>,
}

/// `{ from = "local path or glob", to = "/container/path" }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncDecl {
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    #[schemars(with = "String")]
    pub to: Spanned<String>,
}

/// `{ cmd = [...] or "shell line", trigger = ["glob", ...] }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunDecl {
    #[schemars(with = "CommandDecl")]
    pub cmd: Spanned<CommandDecl>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub trigger: Vec<Spanned<String>>,
}

/// A command as an argv (run as is: the image may have no shell) or one line for `/bin/sh -c`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandDecl {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceDecl {
    #[schemars(with = "Option<String>")]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub manifests: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub depends_on: Vec<Spanned<String>>,
    /// A Helm chart rendered with `helm template`, deployed like manifests.
    #[schemars(with = "Option<HelmDecl>")]
    pub helm: Option<Spanned<HelmDecl>>,
    /// `"LOCAL:REMOTE"` or `"PORT"` (the same on both sides).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub port_forwards: Vec<Spanned<String>>,
    /// A command run in a ready pod of the resource (as `kubectl exec` would) until it
    /// exits 0: the resource is ready only then, for checks that pod readiness cannot
    /// make ("messages flow").
    #[schemars(with = "Option<Vec<String>>")]
    pub ready_cmd: Option<Spanned<Vec<String>>>,
    /// A command run in a ready pod of the resource every few seconds; its output is the
    /// resource's status panel in the TUI and in `tether status`.
    #[schemars(with = "Option<Vec<String>>")]
    pub status_cmd: Option<Spanned<Vec<String>>>,
}

/// `helm = { chart = "path", values = ["values-dev.yaml"], set = { "a.b" = "1" } }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmDecl {
    /// The chart's folder, relative to this file.
    #[schemars(with = "String")]
    pub chart: Spanned<String>,
    /// Values files, relative to this file, applied in order (`helm template -f`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub values: Vec<Spanned<String>>,
    /// Single values (`helm template --set-string KEY=VALUE`).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// The release name; the resource's name when absent.
    pub release: Option<String>,
}

fn dot() -> Spanned<String> {
    Spanned::new(0..0, ".".to_owned())
}
