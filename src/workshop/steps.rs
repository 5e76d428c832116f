//! `workshop.toml`: the steps of a workshop, so a trainer can write one without Rust.
//!
//! Parsed once with `toml` spans and validated into a [`Workshop`]; unknown keys are
//! errors, and every error names the `file:line:col` of the value at fault.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::WorkshopError;
use crate::config::Location;

/// The steps file's name.
pub const FILE_NAME: &str = "workshop.toml";

/// A validated workshop.
#[derive(Debug, Clone)]
pub struct Workshop {
    /// The folder holding `workshop.toml`; its `.tether/` keeps the progress.
    pub dir: PathBuf,
    /// The folder commands and relative paths run from (`root`, relative to `dir`).
    pub root: PathBuf,
    pub title: String,
    pub steps: Vec<Step>,
    /// Commands `--reset` runs, in order, from `root`.
    pub reset: Vec<Vec<String>>,
}

/// One step: what to read, what to type, how it is checked, and what to do if it fails.
#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    pub prose: String,
    pub commands: Vec<String>,
    pub fix: String,
    pub check: Check,
    /// Further checks the step needs too, in order (`also = [...]`).
    pub also: Vec<Check>,
    /// The step (1-based) whose pass ends what this one set up (`holds_until`): the
    /// users forward of step 2 goes when step 3 starts, the intercept when `leave`
    /// passes. Once that step passed, this one stays done though its check fails.
    pub holds_until: Option<usize>,
}

impl Step {
    /// Every check of the step, the main one first.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        std::iter::once(&self.check).chain(&self.also)
    }
}

/// How a step is checked against the real state.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Check {
    /// The kube context answers and is one tether may change.
    Cluster {},
    /// An HTTP request answers with `status` (and a body containing `body_contains`).
    Http {
        url: String,
        #[serde(default = "get")]
        method: String,
        json: Option<serde_json::Value>,
        #[serde(default = "ok")]
        status: u16,
        body_contains: Option<String>,
        /// Through the running `tether connect` session's proxy (cluster names).
        #[serde(default)]
        via_connect: bool,
    },
    /// Deployments rolled out: the current generation observed, every replica available.
    Ready {
        namespace: String,
        deployments: Vec<String>,
    },
    /// A `tether connect` session runs for `namespace` and its DNS answers `resolves`.
    Connect {
        namespace: String,
        resolves: Option<String>,
    },
    /// The Service is (or, with `active = false`, is no longer) intercepted.
    Intercept {
        service: String,
        namespace: String,
        #[serde(default = "yes")]
        active: bool,
    },
    /// Something on localhost accepts TCP on `port`.
    Port { port: u16 },
    /// The quoted text on the line of `file` holding `marker` was changed from `shipped`,
    /// and `url` answers the new text: an edit is saved, built and served.
    Edit {
        file: String,
        marker: String,
        shipped: String,
        url: String,
    },
    /// A program run from the workshop's root exits with `exit` (and prints `stdout_contains`).
    Command {
        run: Vec<String>,
        #[serde(default)]
        exit: i32,
        stdout_contains: Option<String>,
        /// Seconds before the program is killed and the check fails.
        #[serde(default = "command_timeout")]
        timeout: u64,
    },
}

fn get() -> String {
    "GET".into()
}
fn ok() -> u16 {
    200
}
fn yes() -> bool {
    true
}
fn command_timeout() -> u64 {
    60
}

impl Check {
    /// Whether the check reads the cluster through the kube context.
    pub fn needs_cluster(&self) -> bool {
        matches!(
            self,
            Check::Cluster {} | Check::Ready { .. } | Check::Intercept { .. }
        )
    }

    /// The longest a check may take before it fails as "no answer".
    pub fn time_box(&self) -> Duration {
        match self {
            Check::Command { timeout, .. } => Duration::from_secs(*timeout),
            _ => Duration::from_secs(5),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    title: Option<String>,
    root: Option<Spanned<String>>,
    reset: Option<RawReset>,
    #[serde(default, rename = "step")]
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReset {
    #[serde(default)]
    commands: Vec<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    title: Spanned<String>,
    #[serde(default)]
    prose: String,
    #[serde(default)]
    commands: Vec<String>,
    #[serde(default)]
    fix: String,
    check: Spanned<Check>,
    #[serde(default)]
    also: Vec<Spanned<Check>>,
    holds_until: Option<Spanned<usize>>,
}

/// The steps file of `dir`: `dir/workshop.toml`, else `dir/workspace-demo/workshop.toml`.
pub fn find(dir: &Path) -> Result<PathBuf, WorkshopError> {
    [
        dir.join(FILE_NAME),
        dir.join("workspace-demo").join(FILE_NAME),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| WorkshopError::NotFound {
        dir: dir.to_path_buf(),
    })
}

/// Reads and validates the steps file at `path`.
pub fn load(path: &Path) -> Result<Workshop, WorkshopError> {
    let text = fs::read_to_string(path).map_err(|source| WorkshopError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validates the text of a steps file; `path` names it in errors and anchors `root`.
pub fn parse(path: &Path, text: &str) -> Result<Workshop, WorkshopError> {
    let at = |offset: usize| Location::at(path.to_path_buf(), text, offset);
    let invalid = |offset: usize, message: String| WorkshopError::Invalid {
        at: at(offset),
        message,
    };
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| invalid(e.span().map_or(0, |s| s.start), e.message().to_owned()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let root = match &raw.root {
        Some(r) => {
            let root = dir.join(r.get_ref());
            if !root.is_dir() {
                return Err(invalid(
                    r.span().start,
                    format!(
                        "root `{}` is not a folder ({})",
                        r.get_ref(),
                        root.display()
                    ),
                ));
            }
            root
        }
        None => dir.clone(),
    };
    if raw.steps.is_empty() {
        return Err(invalid(0, "a workshop needs at least one [[step]]".into()));
    }
    let mut reset = Vec::new();
    for c in raw.reset.map(|r| r.commands).unwrap_or_default() {
        if c.get_ref().is_empty() {
            return Err(invalid(
                c.span().start,
                "a reset command cannot be empty".into(),
            ));
        }
        reset.push(c.into_inner());
    }
    let mut steps = Vec::new();
    let count = raw.steps.len();
    for s in raw.steps {
        let number = steps.len() + 1;
        if let Some(until) = &s.holds_until {
            let n = *until.get_ref();
            if n <= number || n > count {
                return Err(invalid(
                    until.span().start,
                    format!(
                        "holds_until names step {n}: expected a later step, {} to {count}",
                        number + 1
                    ),
                ));
            }
        }
        if s.title.get_ref().trim().is_empty() {
            return Err(invalid(s.title.span().start, "a step needs a title".into()));
        }
        for c in std::iter::once(&s.check).chain(&s.also) {
            if let Err(message) = validate(c.get_ref()) {
                return Err(invalid(c.span().start, message));
            }
        }
        steps.push(Step {
            title: s.title.into_inner(),
            prose: s.prose,
            commands: s.commands,
            fix: s.fix,
            check: s.check.into_inner(),
            also: s.also.into_iter().map(Spanned::into_inner).collect(),
            holds_until: s.holds_until.map(Spanned::into_inner),
        });
    }
    Ok(Workshop {
        dir,
        root,
        title: raw.title.unwrap_or_else(|| "Workshop".into()),
        steps,
        reset,
    })
}

/// What serde cannot say about a check: values that parse but mean nothing.
fn validate(check: &Check) -> Result<(), String> {
    match check {
        Check::Cluster {} => Ok(()),
        Check::Http {
            url,
            method,
            status,
            ..
        } => {
            http_url(url)?;
            http::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("method `{method}` is not an HTTP method"))?;
            if !(100..=599).contains(status) {
                return Err(format!("status {status} is not an HTTP status"));
            }
            Ok(())
        }
        Check::Ready {
            namespace,
            deployments,
        } => {
            non_empty(namespace, "namespace")?;
            if deployments.is_empty() {
                return Err("deployments: name at least one Deployment".into());
            }
            Ok(())
        }
        Check::Connect { namespace, .. } => non_empty(namespace, "namespace"),
        Check::Intercept {
            service, namespace, ..
        } => {
            non_empty(service, "service")?;
            non_empty(namespace, "namespace")
        }
        Check::Edit {
            file, marker, url, ..
        } => {
            non_empty(file, "file")?;
            non_empty(marker, "marker")?;
            http_url(url)
        }
        Check::Port { port } => match port {
            0 => Err("port 0 is not a port".into()),
            _ => Ok(()),
        },
        Check::Command { run, timeout, .. } => {
            if run.first().is_none_or(|p| p.is_empty()) {
                return Err("run: name the program to run".into());
            }
            if *timeout == 0 {
                return Err("timeout: at least 1 second".into());
            }
            Ok(())
        }
    }
}

fn http_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url `{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url `{url}`: expected http:// or https://"));
    }
    Ok(())
}

fn non_empty(value: &str, key: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{key} cannot be empty"))
    } else {
        Ok(())
    }
}
