//! The checks in order, each given what the ones before it found (the cluster, the
//! registry), each line handed to the caller as soon as it is known. A check whose
//! precondition failed is not tried and says why (a warning: the failure is already on
//! the line it came from).

use std::{collections::BTreeSet, path::PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::{
    context::{self, API_SERVER, Target},
    engine,
    error::DoctorError,
    pull::{self, CLUSTER},
    rbac::{self, RBAC},
    registry::{self, LAPTOP},
    report::{Line, Report},
    userns,
};
use crate::{
    build::{Registry, RegistrySource as Source},
    config::{FILE_NAME, Project},
};

/// What to check: the project folder and the kube context, as for `tether up`.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub context: Option<String>,
}

/// Runs every check; `on_line` sees each line when it is made. A malformed tether.toml
/// is the only error: the report is everything else.
pub async fn diagnose(
    options: &Options,
    cancel: &CancellationToken,
    mut on_line: impl FnMut(&Line),
) -> Result<Report, DoctorError> {
    let project = if options.dir.join(FILE_NAME).is_file() {
        Some(Project::load(&options.dir).map_err(DoctorError::Config)?)
    } else {
        None
    };
    let mut report = Report::default();
    let mut add = |line: Line| {
        on_line(&line);
        report.lines.push(line);
    };
    let not_tried = |check, why: &str| Line::warn(check, format!("not tried: {why}"), None);

    let (line, target) = context::context(&options.dir, options.context.as_deref()).await;
    add(line);
    let reachable = match &target {
        Some(t) => {
            let line = context::api_server(&t.cluster)
                .await
                .unwrap_or_else(|e| e.line(API_SERVER));
            let ok = line.status != super::report::Status::Fail;
            add(line);
            ok.then_some(t)
        }
        None => {
            add(not_tried(API_SERVER, "no kube context"));
            None
        }
    };

    let unreachable = if target.is_none() {
        "no kube context"
    } else {
        "the API server does not answer"
    };
    let namespaces = namespaces(project.as_ref(), reachable);
    match reachable {
        Some(t) => {
            for ns in &namespaces {
                let line = rbac::rbac(&t.cluster.client, ns)
                    .await
                    .unwrap_or_else(|e| e.line(RBAC));
                add(line);
            }
        }
        None => add(not_tried(RBAC, unreachable)),
    }
    if cancel.is_cancelled() {
        return Ok(report);
    }

    add(engine::engine()
        .await
        .unwrap_or_else(|e| e.line(engine::ENGINE)));

    let found = find_registry(project.as_ref(), reachable).await;
    let registry = match found {
        Ok(Some((registry, named))) => {
            let line = registry::laptop(&registry, named)
                .await
                .unwrap_or_else(|e| e.line(LAPTOP));
            let ok = line.status != super::report::Status::Fail;
            add(line);
            ok.then_some(registry)
        }
        Ok(None) => {
            add(Line::warn(
                LAPTOP,
                "no registry named: not in a project folder, and TETHER_REGISTRY is not set",
                Some("run doctor in a folder with tether.toml, or set TETHER_REGISTRY".into()),
            ));
            None
        }
        Err(e) => {
            add(e.line(LAPTOP));
            None
        }
    };
    if cancel.is_cancelled() {
        return Ok(report);
    }

    let line = match (reachable, &registry) {
        (Some(t), Some(registry)) if t.may_change => {
            let namespace = probe_namespace(t, &namespaces).await;
            pull::cluster(&t.cluster.client, &namespace, registry, cancel)
                .await
                .unwrap_or_else(|e| e.line(CLUSTER))
        }
        (Some(_), Some(_)) => not_tried(CLUSTER, "tether may not change this context"),
        (None, _) => not_tried(CLUSTER, unreachable),
        (_, None) => not_tried(CLUSTER, "no registry answers the laptop"),
    };
    add(line);
    if cancel.is_cancelled() {
        return Ok(report);
    }

    add(userns::userns().await);
    Ok(report)
}

/// The project's namespaces, else the context's default one.
fn namespaces(project: Option<&Project>, target: Option<&Target>) -> Vec<String> {
    let of_project: BTreeSet<String> = project
        .into_iter()
        .flat_map(|p| p.resources.values().map(|r| r.namespace.clone()))
        .collect();
    if of_project.is_empty() {
        let default = target.map_or("default", |t| t.cluster.client.default_namespace());
        vec![default.to_owned()]
    } else {
        of_project.into_iter().collect()
    }
}

/// The first of `namespaces` that exists (`up` creates a project's namespace on its first
/// run), else the context's default namespace.
async fn probe_namespace(target: &Target, namespaces: &[String]) -> String {
    let api: Api<Namespace> = Api::all(target.cluster.client.clone());
    for ns in namespaces {
        if let Ok(Some(_)) = api.get_opt(ns).await {
            return ns.clone();
        }
    }
    target.cluster.client.default_namespace().to_owned()
}

/// The registry `up` would push to: tether.toml's, `TETHER_REGISTRY`, or the one the
/// cluster advertises; `None` when none is named anywhere.
async fn find_registry(
    project: Option<&Project>,
    target: Option<&Target>,
) -> Result<Option<(Registry, Source)>, DoctorError> {
    if let Some(named) = Registry::named(project.and_then(|p| p.registry.as_deref())) {
        return Ok(Some(named));
    }
    match (project, target) {
        (Some(_), Some(t)) => Registry::advertised(&t.cluster.client)
            .await
            .map(|r| Some((r, Source::ClusterAdvert)))
            .map_err(DoctorError::FindRegistry),
        _ => Ok(None),
    }
}
