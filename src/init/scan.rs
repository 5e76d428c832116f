//! What a folder holds for `tether init`: its Dockerfiles and the Kubernetes objects of
//! its YAML files. Reads only; every decision about them is [`super::plan`]'s.

use std::{
    fs,
    path::{Path, PathBuf},
};

use kube::api::DynamicObject;

use super::{InitError, neighbours::Neighbour};
use crate::deploy::manifest;

/// Folders beside the Dockerfile where manifests usually live; read with their subfolders.
pub const MANIFEST_DIRS: &[&str] = &["k8s", "manifests", "deploy"];

/// A folder as `tether init` found it.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The folder, as given.
    pub dir: PathBuf,
    /// Its name: an image named like the folder is built from its only Dockerfile.
    pub folder_name: String,
    /// Dockerfile names in the folder (not its subfolders), sorted.
    pub dockerfiles: Vec<String>,
    /// YAML files holding Kubernetes objects, in the order they are found.
    pub manifests: Vec<ManifestFile>,
    /// YAML files that are not manifests (a compose file, a Helm template), and why, so
    /// the generated file can say what it left out.
    pub skipped: Vec<(String, String)>,
    /// Sibling folders with a tether.toml, which a missing Namespace or Secret may come from.
    pub neighbours: Vec<Neighbour>,
}

/// One YAML file and its objects.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// Relative to the folder, with `/` between components, as `tether.toml` writes it.
    pub path: String,
    pub objects: Vec<DynamicObject>,
}

/// Reads `dir`; refuses a folder with no Dockerfile or no manifest.
pub fn scan(dir: &Path) -> Result<Scan, InitError> {
    let folder_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut dockerfiles = Vec::new();
    let mut yaml = Vec::new();
    for (name, is_dir) in entries(dir)? {
        if !is_dir && is_dockerfile(&name) {
            dockerfiles.push(name);
        } else if !is_dir && is_yaml(&name) {
            yaml.push(name);
        }
    }
    if dockerfiles.is_empty() {
        return Err(InitError::NoDockerfile {
            dir: dir.to_path_buf(),
        });
    }
    for sub in MANIFEST_DIRS {
        if dir.join(sub).is_dir() {
            yaml_under(dir, sub, &mut yaml)?;
        }
    }
    let mut manifests = Vec::new();
    let mut skipped = Vec::new();
    for rel in yaml {
        let path = dir.join(&rel);
        let text = fs::read_to_string(&path).map_err(|source| InitError::Read {
            path: path.clone(),
            source,
        })?;
        match manifest::parse(&rel, &text) {
            Ok(objects) if objects.is_empty() => skipped.push((rel, "no objects".into())),
            Ok(objects) => match objects.iter().find_map(not_applied) {
                Some(why) => skipped.push((rel, why)),
                None => manifests.push(ManifestFile { path: rel, objects }),
            },
            Err(e) => skipped.push((rel, e.to_string())),
        }
    }
    if manifests.is_empty() {
        let skipped = skipped
            .iter()
            .map(|(file, why)| format!("\n  skipped {file}: {why}"))
            .collect();
        return Err(InitError::NoManifests {
            dir: dir.to_path_buf(),
            skipped,
        });
    }
    Ok(Scan {
        dir: dir.to_path_buf(),
        folder_name,
        dockerfiles,
        manifests,
        skipped,
        neighbours: super::neighbours::neighbours(dir),
    })
}

/// `Dockerfile`, `Dockerfile.NAME`, `NAME.Dockerfile`; not `Dockerfile.dockerignore`,
/// the ignore file that goes with a Dockerfile.
fn is_dockerfile(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    (name.starts_with("Dockerfile") || lower.ends_with(".dockerfile"))
        && !lower.ends_with(".dockerignore")
}

fn is_yaml(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Why a file that parses as objects is still not something `tether up` applies: the
/// YAML of another tool that happens to have the same top-level keys.
fn not_applied(obj: &DynamicObject) -> Option<String> {
    let types = obj.types.as_ref()?;
    let group = types.api_version.rsplit_once('/').map(|(g, _)| g);
    let builtin = ["apps", "batch", "autoscaling", "policy"];
    let foreign = match group {
        None => false,
        Some("kustomize.config.k8s.io") => true,
        Some(g) => !g.contains('.') && !builtin.contains(&g),
    };
    foreign.then(|| {
        format!(
            "{} {} is not a Kubernetes object",
            types.api_version, types.kind
        )
    })
}

/// The names in `dir`, sorted, and whether each is a folder.
fn entries(dir: &Path) -> Result<Vec<(String, bool)>, InitError> {
    let read = fs::read_dir(dir).map_err(|source| InitError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| InitError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    out.sort();
    Ok(out)
}

/// YAML files under `root/rel`, depth first and sorted, as paths relative to `root`.
fn yaml_under(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), InitError> {
    for (name, is_dir) in entries(&root.join(rel))? {
        if name.starts_with('.') {
            continue;
        }
        let child = format!("{rel}/{name}");
        if is_dir {
            yaml_under(root, &child, out)?;
        } else if is_yaml(&name) {
            out.push(child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";

    #[test]
    fn finds_dockerfiles_and_manifests_where_they_usually_are() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "Dockerfile", "FROM scratch\n");
        write(d, "Dockerfile.dev", "FROM scratch\n");
        write(d, "Dockerfile.dockerignore", "target\n");
        write(d, "web.yaml", DEPLOY);
        write(d, "k8s/svc/a.yml", DEPLOY);
        write(d, "deploy/b.yaml", "---\n# nothing\n");
        write(
            d,
            "docker-compose.yaml",
            "services:\n  web:\n    image: web\n",
        );
        write(
            d,
            "skaffold.yaml",
            "apiVersion: skaffold/v4beta11\nkind: Config\nmetadata:\n  name: x\n",
        );
        write(d, "other/c.yaml", DEPLOY);
        let s = scan(d).unwrap();
        assert_eq!(s.dockerfiles, ["Dockerfile", "Dockerfile.dev"]);
        let paths: Vec<_> = s.manifests.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["web.yaml", "k8s/svc/a.yml"]);
        let skipped: Vec<_> = s.skipped.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            skipped,
            ["docker-compose.yaml", "skaffold.yaml", "deploy/b.yaml"]
        );
    }

    #[test]
    fn refuses_a_folder_without_a_dockerfile_or_without_manifests() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "web.yaml", DEPLOY);
        let e = scan(t.path()).unwrap_err();
        assert!(matches!(e, InitError::NoDockerfile { .. }) && e.is_bad_input());
        write(t.path(), "Dockerfile", "FROM scratch\n");
        fs::remove_file(t.path().join("web.yaml")).unwrap();
        write(t.path(), "compose.yaml", "services: {}\n");
        let e = scan(t.path()).unwrap_err();
        assert!(matches!(e, InitError::NoManifests { .. }) && e.is_bad_input());
        assert!(e.to_string().contains("skipped compose.yaml"), "{e}");
    }
}
