//! The folders beside this one that hold a `tether.toml`, and what each one's own
//! resources create: where a Namespace or Secret the manifests here need may come from
//! (the shop's services all include `../base`, which creates the namespace and the JWT
//! secret). Reads only; [`super::plan`] decides whether to include one.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use crate::{
    config::{self, FILE_NAME},
    deploy::sources,
};

/// A sibling folder with a `tether.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// As `include` writes it, relative to the folder: `../base`.
    pub path: String,
    /// Its own resources (not those it includes), each with the objects it applies as
    /// (kind, name).
    pub resources: Vec<(String, BTreeSet<(String, String)>)>,
}

/// The siblings of `dir` whose `tether.toml` loads, sorted by name. One that does not
/// load (or whose manifests do not render) is no candidate: `init` never fails for it.
pub fn neighbours(dir: &Path) -> Vec<Neighbour> {
    let Some(me) = dir.canonicalize().ok() else {
        return Vec::new();
    };
    let Some(parent) = me.parent() else {
        return Vec::new();
    };
    let Ok(read) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut siblings: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && *p != me && p.join(FILE_NAME).is_file())
        .collect();
    siblings.sort();
    siblings.iter().filter_map(|s| neighbour(s)).collect()
}

fn neighbour(folder: &Path) -> Option<Neighbour> {
    let file = folder.join(FILE_NAME);
    let project = config::load(&file).ok()?;
    let resources = project
        .resources
        .values()
        .filter(|r| r.declared_at.file == file)
        .map(|r| {
            let objects = r
                .manifests
                .iter()
                .filter_map(|m| sources::objects(m, &r.namespace).ok())
                .flatten()
                .filter_map(|o| Some((o.types?.kind, o.metadata.name?)))
                .collect();
            (r.name.clone(), objects)
        })
        .collect();
    let name = folder.file_name()?.to_string_lossy();
    Some(Neighbour {
        path: format!("../{name}"),
        resources,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn a_sibling_names_what_its_own_resources_create_and_a_broken_one_is_no_candidate() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in ["base", "svc", "broken"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(
            root.join("base/tether.toml"),
            "namespace = \"api\"\n[resources.shop-base]\nmanifests = [\"ns.yaml\"]\n",
        )
        .unwrap();
        fs::write(
            root.join("base/ns.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: api\n",
        )
        .unwrap();
        fs::write(
            root.join("broken/tether.toml"),
            "[resources.x]\nmanifest = 1\n",
        )
        .unwrap();
        let found = neighbours(&root.join("svc"));
        assert_eq!(
            found,
            [Neighbour {
                path: "../base".into(),
                resources: vec![(
                    "shop-base".into(),
                    BTreeSet::from([("Namespace".into(), "api".into())])
                )],
            }]
        );
    }
}
