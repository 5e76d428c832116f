//! The allow list of contexts that do not look local, and what "looks local" means.
//!
//! The list comes from the project's root `tether.toml` when there is one (`up`, `down`,
//! and `intercept` run in a service folder), otherwise from the user's own config file
//! ([`user_config_file`]), so commands run outside a project are guarded too.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::ClusterError;
use crate::config::{FILE_NAME, Project};

/// Contexts that may be changed although they do not look local, and the file that says
/// so (named in a refusal, so the user knows where to allow one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    pub contexts: Vec<String>,
    pub file: PathBuf,
}

/// The one key tether reads from a file for the guard; others belong to the project.
#[derive(Debug, Default, Deserialize)]
struct AllowOnly {
    #[serde(default)]
    allow_contexts: Vec<String>,
}

impl AllowList {
    /// The project's list (its root file only: an included file never widens it).
    pub fn of_project(project: &Project) -> AllowList {
        AllowList {
            contexts: project.allow_contexts.clone(),
            file: project.root.join(FILE_NAME),
        }
    }

    /// The list of the nearest `tether.toml` in `dir` or above it, else the user's.
    pub fn for_dir(dir: &Path) -> Result<AllowList, ClusterError> {
        let start = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        match start
            .ancestors()
            .map(|d| d.join(FILE_NAME))
            .find(|f| f.is_file())
        {
            Some(file) => AllowList::read(&file),
            None => AllowList::user(),
        }
    }

    /// The user's list; a missing file allows nothing beyond local clusters.
    pub fn user() -> Result<AllowList, ClusterError> {
        let file = user_config_file();
        match fs::metadata(&file) {
            Ok(_) => AllowList::read(&file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(AllowList {
                contexts: Vec::new(),
                file,
            }),
            Err(source) => Err(ClusterError::AllowFile { path: file, source }),
        }
    }

    fn read(file: &Path) -> Result<AllowList, ClusterError> {
        let text = fs::read_to_string(file).map_err(|source| ClusterError::AllowFile {
            path: file.to_path_buf(),
            source,
        })?;
        let parsed: AllowOnly =
            toml::from_str(&text).map_err(|source| ClusterError::AllowParse {
                path: file.to_path_buf(),
                source,
            })?;
        Ok(AllowList {
            contexts: parsed.allow_contexts,
            file: file.to_path_buf(),
        })
    }
}

/// `$XDG_CONFIG_HOME/tether/config.toml`, else `~/.config/tether/config.toml`.
pub fn user_config_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("tether").join("config.toml")
}

/// Context names of the local cluster tools, and API servers on loopback.
pub fn looks_local(context: &str, server: &str) -> bool {
    const LOCAL_NAMES: &[&str] = &[
        "tether-dev",
        "minikube",
        "docker-desktop",
        "docker-for-desktop",
        "rancher-desktop",
        "orbstack",
        "colima",
        "microk8s",
    ];
    const LOCAL_PREFIXES: &[&str] = &["kind-", "k3d-", "tether-dev-"];
    if LOCAL_NAMES.contains(&context) || LOCAL_PREFIXES.iter().any(|p| context.starts_with(p)) {
        return true;
    }
    let host = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split('/')
        .next()
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host == "localhost"
        || host.starts_with("127.")
        || host == "[::1]"
        || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_contexts_are_recognised() {
        assert!(looks_local("kind-dev", "https://10.0.0.5:6443"));
        assert!(looks_local("tether-dev", "https://192.0.2.2:6443"));
        assert!(looks_local("anything", "https://127.0.0.1:41234"));
        assert!(looks_local("anything", "https://localhost:6443/"));
        assert!(looks_local("anything", "https://[::1]:6443"));
        assert!(!looks_local("prod-eu", "https://api.prod.example.com"));
        assert!(!looks_local("gke_proj_zone_cluster", "https://34.1.2.3"));
        assert!(!looks_local("kindly-prod", "https://34.1.2.3"));
    }

    #[test]
    fn the_nearest_tether_toml_gives_the_list_and_names_itself() {
        let t = tempfile::tempdir().unwrap();
        let svc = t.path().join("svc/src");
        fs::create_dir_all(&svc).unwrap();
        fs::write(
            t.path().join("svc").join(FILE_NAME),
            "allow_contexts = [\"stage\"]\n[images.x]\ncontext = \".\"\n",
        )
        .unwrap();
        let list = AllowList::for_dir(&svc).unwrap();
        assert_eq!(list.contexts, ["stage"]);
        assert!(list.file.ends_with("svc/tether.toml"), "{list:?}");
    }

    #[test]
    fn a_malformed_list_is_bad_input_naming_the_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(FILE_NAME), "\nallow_contexts = \"stage\"\n").unwrap();
        let e = AllowList::for_dir(t.path()).unwrap_err();
        assert!(e.is_bad_input());
        let text = e.to_string();
        assert!(
            text.contains("tether.toml") && text.contains("line 2"),
            "{text}"
        );
    }
}
