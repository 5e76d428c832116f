//! A resource's objects from where they come from: its YAML files as they are, a
//! kustomization rendered as `kubectl kustomize` renders it, a Helm chart rendered by
//! `helm template`. What comes out goes through the same rendering as plain YAML, so
//! images are pinned and every object is recorded before it is sent.

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
};

use kube::api::DynamicObject;

use super::manifest::{self, ManifestError};
use crate::config::{HelmChart, Manifests, Resource};

/// The objects one source of a resource gave, before rendering.
#[derive(Debug, Clone)]
pub struct SourceObjects {
    /// From tether's own objects (a profile's namespace), not the developer's manifests.
    pub tethers_own: bool,
    pub objects: Vec<DynamicObject>,
}

/// One source read: its objects, or why it could not be read (shared, since the round
/// that applies it and the plan that counts its images both hold it).
pub type Read = Result<SourceObjects, Arc<ManifestError>>;

/// Every source of `resource`, in order, each read once: kustomize and Helm run here,
/// and what they printed is what the plan and the apply both use.
pub fn read(resource: &Resource) -> Vec<Read> {
    resource
        .manifests
        .iter()
        .map(|source| {
            Ok(SourceObjects {
                tethers_own: matches!(source, Manifests::Objects(_)),
                objects: objects(source, &resource.namespace)?,
            })
        })
        .map(|r| r.map_err(Arc::new))
        .collect()
}

/// The objects of `source`; `namespace` is the one a chart is rendered for.
pub fn objects(source: &Manifests, namespace: &str) -> Result<Vec<DynamicObject>, ManifestError> {
    match source {
        Manifests::File(path) => manifest::read(path),
        Manifests::Kustomize(dir) => {
            let what = format!("kustomization {}", dir.display());
            let text = kustomize(dir, &what)?;
            manifest::parse(&what, &text)
        }
        Manifests::Helm(chart) => {
            let what = format!("chart {}", chart.chart.display());
            let text = helm_template(chart, namespace, &what)?;
            manifest::parse(&what, &text)
        }
        Manifests::Objects(values) => values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value(v.clone()).map_err(|e| ManifestError::NotAnObject {
                    file: "tether's own objects".into(),
                    index: i + 1,
                    message: e.to_string(),
                })
            })
            .collect(),
    }
}

/// `kustomize build DIR`, or `kubectl kustomize DIR` (the same kustomize, built into
/// kubectl) when there is no kustomize.
fn kustomize(dir: &Path, what: &str) -> Result<String, ManifestError> {
    let dir = dir.to_string_lossy();
    match run(what, "kustomize", &["build", &dir]) {
        Err(ManifestError::ToolMissing { .. }) => run(what, "kubectl", &["kustomize", &dir])
            .map_err(|e| match e {
                ManifestError::ToolMissing { what, .. } => ManifestError::ToolMissing {
                    what,
                    program: "kubectl or kustomize".into(),
                },
                other => other,
            }),
        other => other,
    }
}

/// `helm template RELEASE CHART --namespace NS -f VALUES… --set-string K=V…`.
fn helm_template(chart: &HelmChart, namespace: &str, what: &str) -> Result<String, ManifestError> {
    let mut args: Vec<String> = vec![
        "template".into(),
        chart.release.clone(),
        chart.chart.to_string_lossy().into_owned(),
        "--namespace".into(),
        namespace.to_owned(),
    ];
    for values in &chart.values {
        args.push("--values".into());
        args.push(values.to_string_lossy().into_owned());
    }
    for (key, value) in &chart.set {
        args.push("--set-string".into());
        args.push(format!("{key}={value}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(what, "helm", &args)
}

/// Runs a renderer and returns what it printed; a failure carries its error output.
fn run(what: &str, program: &str, args: &[&str]) -> Result<String, ManifestError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ManifestError::ToolMissing {
                what: what.to_owned(),
                program: program.to_owned(),
            },
            _ => ManifestError::Render {
                what: what.to_owned(),
                command: format!("{program} {}", args.join(" ")),
                message: source.to_string(),
            },
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ManifestError::Render {
            what: what.to_owned(),
            command: format!("{program} {}", args.join(" ")),
            message: stderr.trim().to_owned(),
        });
    }
    String::from_utf8(output.stdout).map_err(|e| ManifestError::Render {
        what: what.to_owned(),
        command: format!("{program} {}", args.join(" ")),
        message: format!("printed something that is not UTF-8: {e}"),
    })
}
