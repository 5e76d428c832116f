//! The files whose content decides whether an image needs building, and their digest.
//!
//! An image's inputs are the files and folders its config names (by default its context).
//! Folders are walked honouring `.gitignore` (and the context's `.dockerignore` when the
//! input is the context itself); ignored trees are never entered. The watcher uses the
//! same walk, so "is this file an input" has one answer everywhere.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use sha2::{Digest as _, Sha256};

use super::dockerignore::DockerIgnore;
use crate::config::Image;

/// Every input file of `image`, absolute and sorted.
pub fn input_files(image: &Image) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in &image.inputs {
        if input.is_file() {
            files.push(input.clone());
            continue;
        }
        let dockerignore = if *input == image.context {
            Some(DockerIgnore::for_build(&image.context, &image.dockerfile)?)
        } else {
            None
        };
        for entry in walker(input).build() {
            let entry = entry.map_err(io::Error::other)?;
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.into_path();
            if let Some(di) = &dockerignore {
                if path
                    .strip_prefix(&image.context)
                    .is_ok_and(|rel| di.is_excluded(rel))
                {
                    continue;
                }
            }
            files.push(path);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// A walk of `dir` that honours `.gitignore` files (in or out of a git checkout), keeps
/// hidden files (`.env` can matter to a build) and never enters `.git` or tether's own
/// `.tether` state folder (its lock and logs appear before its `.gitignore` does, and
/// would otherwise change the digest of an image whose context is the project root).
pub fn walker(dir: &Path) -> ignore::WalkBuilder {
    let mut w = ignore::WalkBuilder::new(dir);
    w.hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(true)
        .filter_entry(|e| e.file_name() != ".git" && e.file_name() != ".tether");
    w
}

/// Content hashes of files, reused while a file's size and modification time are unchanged,
/// so a change to one file does not re-read the others.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: HashMap<PathBuf, (SystemTime, u64, [u8; 32])>,
}

impl HashCache {
    fn file_hash(&mut self, path: &Path) -> io::Result<[u8; 32]> {
        let meta = fs::metadata(path)?;
        let mtime = meta.modified()?;
        if let Some((t, len, h)) = self.entries.get(path) {
            if *t == mtime && *len == meta.len() {
                return Ok(*h);
            }
        }
        let h: [u8; 32] = Sha256::digest(fs::read(path)?).into();
        self.entries
            .insert(path.to_path_buf(), (mtime, meta.len(), h));
        Ok(h)
    }
}

/// The digest of everything that decides an image's content: its input files (paths
/// relative to the config's folder, and bytes), the Dockerfile and the host build command.
pub fn digest(image: &Image, cache: &mut HashCache) -> io::Result<String> {
    digest_of(image, &input_files(image)?, cache)
}

/// [`digest`] over `files`, the image's input files as a walk already found them (sorted),
/// so one walk serves both "is this file an input" and the digest.
pub fn digest_of<'a>(
    image: &Image,
    files: impl IntoIterator<Item = &'a PathBuf>,
    cache: &mut HashCache,
) -> io::Result<String> {
    let base = image.context.as_path();
    let mut h = Sha256::new();
    h.update(b"tether-input-digest-v1\0");
    for arg in image.host_build.iter().flat_map(|b| &b.argv) {
        h.update(arg.as_bytes());
        h.update(b"\0");
    }
    h.update(fs::read(&image.dockerfile)?);
    h.update(b"\0");
    for file in files {
        h.update(relative(file, base).as_bytes());
        h.update(b"\0");
        h.update(cache.file_hash(file)?);
    }
    Ok(hex::encode(h.finalize()))
}

/// `file` relative to `base`, with `..` where it lies outside, so the digest is the same
/// in every checkout of the project.
fn relative(file: &Path, base: &Path) -> String {
    let f: Vec<_> = file.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = f.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &f[common..] {
        out.push(c);
    }
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Location;

    fn image(dir: &Path, inputs: Vec<PathBuf>) -> Image {
        Image {
            name: "app".into(),
            context: dir.to_path_buf(),
            dockerfile: dir.join("Dockerfile"),
            host_build: None,
            inputs,
            live_update: None,
            declared_at: Location {
                file: dir.join("tether.toml"),
                line: 1,
                col: 1,
            },
        }
    }

    #[test]
    fn relative_paths_climb_out_of_the_base() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a/b")), "c");
        assert_eq!(relative(Path::new("/a/x/y"), Path::new("/a/b")), "../x/y");
    }

    #[test]
    fn digest_follows_inputs_and_skips_ignored_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("src")).unwrap();
        fs::create_dir_all(d.join("target/debug")).unwrap();
        fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(d.join(".gitignore"), "/target\n").unwrap();
        fs::write(d.join("src/main.rs"), "v1").unwrap();
        fs::write(d.join("README.md"), "docs").unwrap();
        fs::write(d.join("target/debug/out"), "x").unwrap();
        let img = image(d, vec![d.join("src")]);
        let mut cache = HashCache::default();
        let first = digest(&img, &mut cache).unwrap();

        fs::write(d.join("README.md"), "other docs").unwrap();
        assert_eq!(
            digest(&img, &mut cache).unwrap(),
            first,
            "README is not an input"
        );

        fs::write(d.join("src/main.rs"), "v2").unwrap();
        let second = digest(&img, &mut cache).unwrap();
        assert_ne!(second, first);

        let whole = image(d, vec![d.to_path_buf()]);
        let files = input_files(&whole).unwrap();
        assert!(
            !files.iter().any(|f| f.starts_with(d.join("target"))),
            "{files:?}"
        );
        assert!(files.contains(&d.join("README.md")));
    }

    #[test]
    fn tethers_own_state_folder_is_never_an_input() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(d.join("index.html"), "hi").unwrap();
        // What `up` writes beside tether.toml before its record's `.gitignore` exists.
        fs::create_dir_all(d.join(".tether/logs/web")).unwrap();
        fs::write(d.join(".tether/up.lock"), "").unwrap();
        fs::write(d.join(".tether/logs/web/1.log"), "line").unwrap();
        let img = image(d, vec![d.to_path_buf()]);
        let files = input_files(&img).unwrap();
        assert!(
            !files.iter().any(|f| f.starts_with(d.join(".tether"))),
            "{files:?}"
        );
        let mut cache = HashCache::default();
        let before = digest(&img, &mut cache).unwrap();
        fs::write(d.join(".tether/.gitignore"), "*\n").unwrap();
        fs::write(d.join(".tether/logs/web/1.log"), "more lines").unwrap();
        assert_eq!(digest(&img, &mut cache).unwrap(), before);
    }
}
