//! The local side of a sync: the files live-update rules cover as they are now, and what
//! one container needs of them.
//!
//! What a container holds is its image's files (the baseline, hashed when the image was
//! built) overlaid with what was synced into it since (its supervisor's state). A file is
//! sent when its content differs from that, deleted when it is gone here; so a pod that
//! started from the image after a sync (a scale-up, a replaced pod) gets every synced
//! change, and a save without edits sends nothing.

use std::{
    collections::BTreeMap,
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

use crate::config::LiveUpdate;

/// A local file a sync rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    pub local: PathBuf,
    pub sha256: String,
    pub mode: u32,
}

/// Container path → the local file that goes there, for every file the rules cover now.
pub fn covered(live: &LiveUpdate) -> io::Result<BTreeMap<String, Covered>> {
    let mut out = BTreeMap::new();
    for rule in &live.sync {
        let mut files = Vec::new();
        walk(rule.from.base(), &mut files)?;
        for local in files {
            let Some(target) = rule.target(&local) else {
                continue;
            };
            if out.contains_key(&target) {
                continue; // the first rule that covers a target wins
            }
            let bytes = std::fs::read(&local)?;
            let mode = std::fs::metadata(&local)?.permissions().mode() & 0o7777;
            out.insert(
                target,
                Covered {
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    local,
                    mode,
                },
            );
        }
    }
    Ok(out)
}

/// Every file at or under `path`; nothing when it does not exist (a host build's output
/// before its first run).
fn walk(path: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            walk(&entry?.path(), out)?;
        }
    }
    Ok(())
}

/// Container path → sha256 of what the container holds there.
pub type Held = BTreeMap<String, String>;

/// What one container needs: the files to send and the paths to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needed<'a> {
    pub send: Vec<(&'a str, &'a Covered)>,
    pub delete: Vec<String>,
}

impl Needed<'_> {
    pub fn is_empty(&self) -> bool {
        self.send.is_empty() && self.delete.is_empty()
    }
}

/// What a container whose image held `baseline` and into which `synced` was synced needs
/// to hold `now`.
pub fn needed<'a>(
    now: &'a BTreeMap<String, Covered>,
    baseline: &Held,
    synced: &Held,
) -> Needed<'a> {
    let holds = |path: &str| synced.get(path).or_else(|| baseline.get(path));
    let send = now
        .iter()
        .filter(|(path, file)| holds(path) != Some(&file.sha256))
        .map(|(path, file)| (path.as_str(), file))
        .collect();
    let mut delete: Vec<String> = baseline
        .keys()
        .chain(synced.keys())
        .filter(|p| !now.contains_key(*p))
        .cloned()
        .collect();
    delete.sort();
    delete.dedup();
    Needed { send, delete }
}

/// The hashes of `covered`, as a baseline.
pub fn held(covered: &BTreeMap<String, Covered>) -> Held {
    covered
        .iter()
        .map(|(p, c)| (p.clone(), c.sha256.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sha: &str) -> Covered {
        Covered {
            local: PathBuf::from("/l"),
            sha256: sha.into(),
            mode: 0o644,
        }
    }

    fn held_of(of: &[(&str, &str)]) -> Held {
        of.iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn a_container_gets_what_differs_from_its_image_and_its_syncs() {
        let now = BTreeMap::from([
            ("/app/a".to_owned(), file("a2")),
            ("/app/b".to_owned(), file("b1")),
            ("/app/c".to_owned(), file("c1")),
        ]);
        let baseline = held_of(&[("/app/a", "a1"), ("/app/b", "b1"), ("/app/gone", "g1")]);
        // A pod that has had nothing synced: everything since the image.
        let fresh = needed(&now, &baseline, &Held::new());
        let sent: Vec<&str> = fresh.send.iter().map(|(p, _)| *p).collect();
        assert_eq!(sent, ["/app/a", "/app/c"]);
        assert_eq!(fresh.delete, ["/app/gone"]);
        // A pod that got a2 and c1 already and the delete: nothing.
        let synced = held_of(&[("/app/a", "a2"), ("/app/c", "c1")]);
        let baseline_without_gone = held_of(&[("/app/a", "a1"), ("/app/b", "b1")]);
        assert!(needed(&now, &baseline_without_gone, &synced).is_empty());
    }

    #[test]
    fn covered_files_follow_the_rules_and_a_missing_output_is_no_error() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("static/css")).unwrap();
        std::fs::write(d.join("static/css/a.css"), "a").unwrap();
        std::fs::write(d.join("static/b.js"), "b").unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(
            d.join("tether.toml"),
            "[images.web]\n[images.web.live_update]\nsync = [{ from = \"static\", to = \"/www\" }, { from = \".build/web\", to = \"/web\" }]\n",
        )
        .unwrap();
        let project = crate::config::Project::load(d).unwrap();
        let live = project.images["web"].live_update.as_ref().unwrap();
        let files = covered(live).unwrap();
        let targets: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(targets, ["/www/b.js", "/www/css/a.css"]);
        assert_eq!(files["/www/b.js"].sha256, hex::encode(Sha256::digest(b"b")),);
    }
}
