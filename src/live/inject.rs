//! The pod-spec side of live update: a rendered workload whose containers run a
//! live-updated image gets tether's supervisor, and nothing else changes.
//!
//! - an `emptyDir` at [`MOUNT`], which outlives container restarts (synced files are
//!   replayed from it) but not the pod;
//! - an init container from the agent image that copies tether's static binary there, so
//!   the app's image needs no tools of ours, `FROM scratch` included;
//! - each such container's command becomes `tether-agent supervise … -- ARGV`, ARGV being
//!   exactly what Kubernetes would have run (its `command`/`args`, else the image's
//!   entrypoint and cmd, by the same rules);
//! - the supervisor's token comes from a Secret through `secretKeyRef`, never as a value
//!   in the spec.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use super::wire::{AGENT_IN_IMAGE, BINARY, CONTROL_PORT, MOUNT, STATE_DIR, TOKEN_ENV};
use crate::{build::registry::ImageEntry, deploy::manifest::pod_spec_mut};

/// The volume holding the binary and the synced state.
pub const VOLUME: &str = "tether-live";
/// The init container that puts the binary in place.
pub const INIT_CONTAINER: &str = "tether-live-init";
/// The key of the token in the resource's live Secret: the one every tether Secret uses.
pub const TOKEN_KEY: &str = crate::intercept::patch::TOKEN_KEY;

/// How to supervise one resource's workloads.
#[derive(Debug, Clone)]
pub struct Injection<'a> {
    /// The agent image, which holds the static binary at [`AGENT_IN_IMAGE`].
    pub agent_image: &'a str,
    /// The Secret that holds the token under [`TOKEN_KEY`], and the token.
    pub secret: &'a str,
    pub token: &'a str,
    /// Per live-updated image name (as manifests write it): what it runs when a container
    /// names no command (its config in the registry).
    pub images: &'a BTreeMap<String, ImageEntry>,
}

/// A container that now runs under the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervised {
    pub container: String,
    pub image: String,
    /// Its declared container ports: after a restart the supervisor waits for these.
    pub ports: Vec<u16>,
}

/// Why a workload cannot be supervised.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error(
        "container `{container}` runs image `{image}`, which names no command and whose entrypoint and cmd are empty: tether cannot tell what to supervise"
    )]
    NoCommand { container: String, image: String },
    #[error("container `{container}` already mounts something at {MOUNT}, which live update needs")]
    MountTaken { container: String },
    #[error(
        "containers `{first}` and `{second}` of one pod both run live-updated images: live update supervises one container per pod"
    )]
    TwoInOnePod { first: String, second: String },
}

/// Puts the supervisor into `obj`'s pod spec for every container running one of
/// `injection.images`. Objects without such containers are left exactly as they were.
pub fn inject(
    obj: &mut DynamicObject,
    injection: &Injection,
) -> Result<Vec<Supervised>, InjectError> {
    let Some(spec) = pod_spec_mut(&mut obj.data) else {
        return Ok(Vec::new());
    };
    let mut supervised = Vec::new();
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in containers {
            let Some(name) = image_name(c) else { continue };
            let Some(entry) = injection.images.get(&name) else {
                continue;
            };
            supervised.push(supervise(c, &name, entry, injection.secret)?);
        }
    }
    if let [first, second, ..] = &supervised[..] {
        return Err(InjectError::TwoInOnePod {
            first: first.container.clone(),
            second: second.container.clone(),
        });
    }
    if supervised.is_empty() {
        return Ok(supervised);
    }
    push(spec, "volumes", json!({ "name": VOLUME, "emptyDir": {} }));
    push(
        spec,
        "initContainers",
        json!({
            "name": INIT_CONTAINER,
            "image": injection.agent_image,
            "imagePullPolicy": "IfNotPresent",
            "command": [AGENT_IN_IMAGE, "copy-self", BINARY],
            "volumeMounts": [{ "name": VOLUME, "mountPath": MOUNT }],
            "resources": {
                "requests": { "cpu": "10m", "memory": "16Mi" },
                "limits": { "memory": "64Mi" },
            },
            // As the restricted Pod Security level asks; the pod's user applies.
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "capabilities": { "drop": ["ALL"] },
                "seccompProfile": { "type": "RuntimeDefault" },
            },
        }),
    );
    Ok(supervised)
}

/// The container's image name as manifests write it (no tag).
fn image_name(c: &Value) -> Option<String> {
    let image = c.get("image")?.as_str()?;
    Some(image.split(':').next().unwrap_or(image).to_owned())
}

fn supervise(
    c: &mut Value,
    image: &str,
    entry: &ImageEntry,
    secret: &str,
) -> Result<Supervised, InjectError> {
    let container = c
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let strings = |key: &str| -> Option<Vec<String>> {
        c.get(key).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
    };
    let argv = original_argv(strings("command"), strings("args"), entry);
    if argv.is_empty() {
        return Err(InjectError::NoCommand {
            container,
            image: image.to_owned(),
        });
    }
    let mounts_taken = c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .is_some_and(|ms| {
            ms.iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT))
        });
    if mounts_taken {
        return Err(InjectError::MountTaken { container });
    }
    let ports = c
        .get("ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("containerPort")?.as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    let port = CONTROL_PORT.to_string();
    c["command"] = json!([
        BINARY,
        "supervise",
        "--control",
        port,
        "--state",
        STATE_DIR,
        "--"
    ]);
    c["args"] = json!(argv);
    push(
        c,
        "volumeMounts",
        json!({ "name": VOLUME, "mountPath": MOUNT }),
    );
    push(
        c,
        "env",
        json!({
            "name": TOKEN_ENV,
            "valueFrom": { "secretKeyRef": { "name": secret, "key": TOKEN_KEY } },
        }),
    );
    Ok(Supervised {
        container,
        image: image.to_owned(),
        ports,
    })
}

/// What Kubernetes runs for a container: `command` replaces the entrypoint (and drops the
/// image's cmd), `args` replaces the cmd.
fn original_argv(
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    entry: &ImageEntry,
) -> Vec<String> {
    match (command, args) {
        (Some(command), args) => command
            .into_iter()
            .chain(args.unwrap_or_default())
            .collect(),
        (None, Some(args)) => entry.entrypoint.iter().cloned().chain(args).collect(),
        (None, None) => entry.entrypoint.iter().chain(&entry.cmd).cloned().collect(),
    }
}

fn push(parent: &mut Value, list: &str, item: Value) {
    match parent.get_mut(list).and_then(Value::as_array_mut) {
        Some(items) => items.push(item),
        None => parent[list] = json!([item]),
    }
}

/// The resource's live Secret, holding `token`.
pub fn secret(name: &str, namespace: &str, token: &str) -> DynamicObject {
    // ByteString writes itself as base64, as `data` wants.
    let token = serde_json::to_value(k8s_openapi::ByteString(token.as_bytes().to_vec()))
        .unwrap_or_default();
    DynamicObject::new(
        name,
        &ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
    )
    .within(namespace)
    .data(json!({ "type": "Opaque", "data": { TOKEN_KEY: token } }))
}

#[cfg(test)]
mod tests;
