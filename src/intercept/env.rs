//! The intercepted container's environment, resolved as the kubelet would (env values,
//! ConfigMap and Secret references, envFrom, `$(VAR)` expansion, a few pod fields), and
//! written as a dotenv file only its owner can read: it may hold secrets. The file is
//! written whole to a new file (mode 0600, in the same folder) and renamed into place, so
//! nobody reading the old one sees it truncated and a symlink at the destination is
//! replaced, never followed.

use std::{collections::BTreeMap, path::Path};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

use super::{InterceptError, error::kube_err};

/// The environment of the container `found` names, resolved against one of its pods
/// (for field references) when one runs.
pub async fn of_found(
    client: &Client,
    found: &super::Found,
) -> Result<(String, Vec<(String, String)>), InterceptError> {
    let t = found.first();
    let Some(container) = found
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.iter().find(|c| c.name == t.container))
    else {
        return Ok((t.container.clone(), Vec::new()));
    };
    let pods = crate::deploy::Workload {
        kind: crate::kube::WorkloadKind::Deployment,
        namespace: t.namespace.clone(),
        name: t.deployment.clone(),
        selector: found.pod_selector.clone(),
    }
    .pods(client)
    .await
    .unwrap_or_default();
    let vars = resolve(client, &t.namespace, container, pods.first()).await?;
    Ok((container.name.clone(), vars))
}

/// Reads what the container's env refers to; `pod` fills field references when given.
pub async fn resolve(
    client: &Client,
    namespace: &str,
    container: &Container,
    pod: Option<&Pod>,
) -> Result<Vec<(String, String)>, InterceptError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut cm_cache: BTreeMap<String, Option<BTreeMap<String, String>>> = BTreeMap::new();
    let mut secret_cache: BTreeMap<String, Option<BTreeMap<String, String>>> = BTreeMap::new();

    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(name, _)| *name != k);
        vars.push((k, v));
    };

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let data = config_map(&cms, &mut cm_cache, &r.name)
                .await
                .map_err(kube_err(format!("ConfigMap {}", r.name)))?;
            match data {
                Some(d) => d
                    .into_iter()
                    .for_each(|(k, v)| set(&mut vars, format!("{prefix}{k}"), v)),
                None if r.optional == Some(true) => {}
                None => {
                    return Err(InterceptError::Env(format!(
                        "ConfigMap {} is missing",
                        r.name
                    )));
                }
            }
        }
        if let Some(r) = &from.secret_ref {
            let data = secret(&secrets, &mut secret_cache, &r.name)
                .await
                .map_err(kube_err(format!("Secret {}", r.name)))?;
            match data {
                Some(d) => d
                    .into_iter()
                    .for_each(|(k, v)| set(&mut vars, format!("{prefix}{k}"), v)),
                None if r.optional == Some(true) => {}
                None => return Err(InterceptError::Env(format!("Secret {} is missing", r.name))),
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            Some(expand(v, &vars))
        } else if let Some(from) = &e.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let data = config_map(&cms, &mut cm_cache, &r.name)
                    .await
                    .map_err(kube_err(format!("ConfigMap {}", r.name)))?;
                let v = data.and_then(|d| d.get(&r.key).cloned());
                if v.is_none() && r.optional != Some(true) {
                    return Err(InterceptError::Env(format!(
                        "{}: key {} of ConfigMap {} is missing",
                        e.name, r.key, r.name
                    )));
                }
                v
            } else if let Some(r) = &from.secret_key_ref {
                let data = secret(&secrets, &mut secret_cache, &r.name)
                    .await
                    .map_err(kube_err(format!("Secret {}", r.name)))?;
                let v = data.and_then(|d| d.get(&r.key).cloned());
                if v.is_none() && r.optional != Some(true) {
                    return Err(InterceptError::Env(format!(
                        "{}: key {} of Secret {} is missing",
                        e.name, r.key, r.name
                    )));
                }
                v
            } else if let Some(r) = &from.field_ref {
                pod.and_then(|p| field(p, &r.field_path))
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            set(&mut vars, e.name.clone(), v);
        }
    }
    Ok(vars)
}

async fn config_map(
    api: &Api<ConfigMap>,
    cache: &mut BTreeMap<String, Option<BTreeMap<String, String>>>,
    name: &str,
) -> kube::Result<Option<BTreeMap<String, String>>> {
    if !cache.contains_key(name) {
        let data = api
            .get_opt(name)
            .await?
            .map(|cm| cm.data.unwrap_or_default());
        cache.insert(name.to_owned(), data);
    }
    Ok(cache.get(name).cloned().flatten())
}

async fn secret(
    api: &Api<Secret>,
    cache: &mut BTreeMap<String, Option<BTreeMap<String, String>>>,
    name: &str,
) -> kube::Result<Option<BTreeMap<String, String>>> {
    if !cache.contains_key(name) {
        let data = api.get_opt(name).await?.map(|s| {
            let mut out: BTreeMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            out.extend(s.string_data.unwrap_or_default());
            out
        });
        cache.insert(name.to_owned(), data);
    }
    Ok(cache.get(name).cloned().flatten())
}

/// The pod fields the downward API offers most often.
fn field(pod: &Pod, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        p => {
            let (map, key) = if let Some(k) = p.strip_prefix("metadata.labels['") {
                (m.labels.as_ref(), k)
            } else if let Some(k) = p.strip_prefix("metadata.annotations['") {
                (m.annotations.as_ref(), k)
            } else {
                return None;
            };
            map?.get(key.strip_suffix("']")?).cloned()
        }
    }
}

/// Kubernetes' `$(VAR)` expansion against the variables defined so far; `$$` is `$`.
pub fn expand(value: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Writes `KEY=VALUE` lines, quoting values that need it, to a new file created 0600
/// next to `path`, then renames it over `path`.
pub fn write(path: &Path, vars: &[(String, String)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (k, v) in vars {
        text.push_str(k);
        text.push('=');
        text.push_str(&quote(v));
        text.push('\n');
    }
    crate::state_dir::write_private(path, text.as_bytes())
}

fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,@%+=".contains(c));
    if plain {
        return v.to_owned();
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::{io::Read as _, os::unix::fs::PermissionsExt as _};

    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = vec![("HOST".to_owned(), "db".to_owned())];
        assert_eq!(
            expand("postgres://$(HOST):5432", &vars),
            "postgres://db:5432"
        );
        assert_eq!(expand("$(NOPE)-$$(HOST)-$", &vars), "$(NOPE)-$(HOST)-$");
    }

    #[test]
    fn the_env_file_is_private_and_quotes_what_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payments.env");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(
            &path,
            &[
                ("A".into(), "plain-1.2".into()),
                ("B".into(), "two words \"q\" $x\nline".into()),
                ("C".into(), String::new()),
            ],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "A=plain-1.2\nB=\"two words \\\"q\\\" \\$x\\nline\"\nC=\"\"\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed_and_readers_keep_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "someone else's file").unwrap();
        let path = dir.path().join("payments.env");
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        write(&path, &[("A".into(), "1".into())]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&elsewhere).unwrap(),
            "someone else's file",
            "the symlink's target is untouched"
        );
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_file()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // Someone has the file open while it is written again: they keep reading the
        // old contents, whole, and no temporary file is left behind.
        let mut open = std::fs::File::open(&path).unwrap();
        write(&path, &[("A".into(), "2".into())]).unwrap();
        let mut old = String::new();
        open.read_to_string(&mut old).unwrap();
        assert_eq!(old, "A=1\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
