//! The raw shape of one `tether.toml`, as serde reads it. Unknown keys are errors, so a
//! typo never silently does nothing. Spans are kept on every value a later check may
//! reject, so that check can point at it.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Default namespace for this file's resources.
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_contexts: Vec<String>,
    pub registry: Option<Spanned<String>>,
    /// Folders (relative to this file) whose `tether.toml` joins this project.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub images: BTreeMap<String, Spanned<ImageDecl>>,
    #[serde(default)]
    pub resources: BTreeMap<String, Spanned<ResourceDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDecl {
    #[serde(default = "dot")]
    pub context: Spanned<String>,
    pub dockerfile: Option<Spanned<String>>,
    pub host_build: Option<Spanned<Vec<String>>>,
    pub inputs: Option<Vec<Spanned<String>>>,
    pub live_update: Option<Spanned<LiveUpdateDecl>>,
}

/// `[images.NAME.live_update]`: how a change reaches running containers without a build.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveUpdateDecl {
    #[serde(default)]
    pub sync: Vec<Spanned<SyncDecl>>,
    #[serde(default)]
    pub run: Vec<Spanned<RunDecl>>,
    #[serde(default)]
    pub restart: bool,
    #[serde(default)]
    pub fall_back_on: Vec<Spanned<String>>,
}

/// `{ from = "local path or glob", to = "/container/path" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDecl {
    pub from: Spanned<String>,
    pub to: Spanned<String>,
}

/// `{ cmd = [...] or "shell line", trigger = ["glob", ...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDecl {
    pub cmd: Spanned<CommandDecl>,
    #[serde(default)]
    pub trigger: Vec<Spanned<String>>,
}

/// A command as an argv (run as is: the image may have no shell) or one line for `/bin/sh -c`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CommandDecl {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDecl {
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub manifests: Vec<Spanned<String>>,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// A Helm chart rendered with `helm template`, deployed like manifests.
    pub helm: Option<Spanned<HelmDecl>>,
    /// `"LOCAL:REMOTE"` or `"PORT"` (the same on both sides).
    #[serde(default)]
    pub port_forwards: Vec<Spanned<String>>,
}

/// `helm = { chart = "path", values = ["values-dev.yaml"], set = { "a.b" = "1" } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmDecl {
    /// The chart's folder, relative to this file.
    pub chart: Spanned<String>,
    /// Values files, relative to this file, applied in order (`helm template -f`).
    #[serde(default)]
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
