//! [`Store`]: the state directory on the emptyDir, which outlives container restarts, and
//! the writes of an update. The state directory holds
//!
//! ```text
//! manifest.json     the newest generation and, per synced path, its SHA-256 and mode
//! blobs/SHA256      each synced file's content, by its digest
//! ```
//!
//! An update is [`stage`](Store::stage)d first: every target gets a temporary file in its
//! own directory (which proves it can be written) before any byte is written, so an update
//! a target refuses writes nothing. The bytes go into those files and into stored copies
//! as they arrive; [`commit`](Store::commit) then renames each onto its target and writes
//! the manifest, also by rename, so no reader ever sees half a file. Dropping a staging
//! (a laptop that went away mid-transfer) removes its temporary files.
//!
//! The app's program is the one target that may be unwritable (a read-only root file
//! system, a root-owned `/users` under a non-root user): it then runs from its stored copy
//! ([`exec`](Store::exec)). On start, [`replay`](Store::replay) writes every stored file
//! back into the fresh container.
//!
//! Nothing is fsynced: the emptyDir lives as long as the pod on its node, and a node
//! crash takes both.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{error::StoreError, program::Program};
use crate::wire::{self, ApplyHeader};

const MANIFEST: &str = "manifest.json";
const BLOBS: &str = "blobs";
/// The mode of stored copies: the program may run from one.
const BLOB_MODE: u32 = 0o700;
/// The mode of a file whose update gave none.
const DEFAULT_MODE: u32 = 0o644;

/// What the state directory records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The layout's version, for a later supervisor reading an older directory.
    #[serde(default)]
    pub version: u32,
    /// The newest update applied.
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub files: BTreeMap<String, Entry>,
}

/// One synced file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Lowercase hex, as the laptop computes it; also the stored copy's name.
    pub sha256: String,
    pub mode: u32,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Files written back into place, or (the program) run from their stored copy.
    pub files: usize,
    /// Files that could not be written back, and why.
    pub failed: Vec<(String, StoreError)>,
}

/// What a commit did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Committed {
    pub written: usize,
    pub deleted: usize,
    /// The program was among the files and runs from its stored copy from now on.
    pub program_stored: bool,
}

/// The state directory. One owner (the update lock's holder); others read
/// [`watch`](Store::watch).
pub struct Store {
    dir: PathBuf,
    blobs: PathBuf,
    manifest: Manifest,
    /// The program's stored copy, when it runs from there.
    exec: Option<PathBuf>,
    manifest_tx: watch::Sender<Manifest>,
}

impl Store {
    /// Opens (creating) the state directory `dir`, removes what a killed supervisor left
    /// half-written, and reads the manifest. A manifest that does not parse is moved aside
    /// (`manifest.json.bad`) and the store starts empty; the warning is returned.
    pub fn open(dir: &Path) -> Result<(Store, Option<String>), StoreError> {
        let blobs = dir.join(BLOBS);
        std::fs::create_dir_all(&blobs).map_err(StoreError::io("create", &blobs))?;
        for d in [dir, blobs.as_path()] {
            remove_temporaries(d);
        }
        let path = dir.join(MANIFEST);
        let (manifest, warning) = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) => (m, None),
                Err(e) => {
                    let aside = dir.join(format!("{MANIFEST}.bad"));
                    let _ = std::fs::rename(&path, &aside);
                    let warning = format!(
                        "the manifest {} does not parse ({e}); moved it to {} and start \
                         with no synced files",
                        path.display(),
                        aside.display()
                    );
                    (Manifest::default(), Some(warning))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Manifest::default(), None),
            Err(e) => return Err(StoreError::io("read", &path)(e)),
        };
        let (manifest_tx, _) = watch::channel(manifest.clone());
        let store = Store {
            dir: dir.to_owned(),
            blobs,
            manifest,
            exec: None,
            manifest_tx,
        };
        Ok((store, warning))
    }

    /// What the directory records now, kept current.
    pub fn watch(&self) -> watch::Receiver<Manifest> {
        self.manifest_tx.subscribe()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The program's stored copy, when the program runs from there.
    pub fn exec(&self) -> Option<&Path> {
        self.exec.as_deref()
    }

    fn blob(&self, sha256: &str) -> PathBuf {
        self.blobs.join(sha256)
    }

    /// Writes every stored file back into place (a restarted container starts from its
    /// image again); the program, where it cannot be written, runs from its stored copy.
    /// A file that cannot be written back is reported and left out; the rest go on.
    pub fn replay(&mut self, program: &Program) -> Replayed {
        let mut replayed = Replayed::default();
        let files: Vec<(String, Entry)> = self
            .manifest
            .files
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        for (path, entry) in files {
            let blob = self.blob(&entry.sha256);
            match self.replay_one(&path, &entry, &blob, program) {
                Ok(stored) => {
                    if stored {
                        self.exec = Some(blob);
                    }
                    replayed.files += 1;
                }
                Err(e) => replayed.failed.push((path, e)),
            }
        }
        replayed
    }

    /// Writes one stored file back; whether it is the program, left to run from the store.
    fn replay_one(
        &self,
        path: &str,
        entry: &Entry,
        blob: &Path,
        program: &Program,
    ) -> Result<bool, StoreError> {
        let mut from = File::open(blob).map_err(StoreError::io("read the stored copy", blob))?;
        let target = Path::new(path);
        let mut tmp = match placement(program.is(target), prepare_target(target), path)? {
            Some(tmp) => tmp,
            None => return Ok(true),
        };
        io::copy(&mut from, &mut tmp.file).map_err(StoreError::io("write", &tmp.path))?;
        tmp.finish(entry.mode)?;
        tmp.persist(target)?;
        Ok(false)
    }

    /// Checks an update's paths and creates a temporary file for each target, before any
    /// byte is written; a target that cannot be written (other than the program) fails the
    /// whole update.
    pub fn stage(&self, header: &ApplyHeader, program: &Program) -> Result<Staging, StoreError> {
        let mut seen = BTreeSet::new();
        for path in header.files.iter().map(|f| &f.path).chain(&header.deletes) {
            wire::check_path(path).map_err(StoreError::BadRequest)?;
            if !seen.insert(path.as_str()) {
                return Err(StoreError::BadRequest(format!(
                    "`{path}` is named twice in one update"
                )));
            }
        }
        let mut files = Vec::with_capacity(header.files.len());
        for f in &header.files {
            let target = PathBuf::from(&f.path);
            let in_place = placement(program.is(&target), prepare_target(&target), &f.path)?;
            let blob = TmpFile::create(&self.blobs, "blob")
                .map_err(StoreError::io("create a stored copy in", &self.blobs))?;
            files.push(Staged {
                path: f.path.clone(),
                target,
                mode: match f.mode & 0o7777 {
                    0 => DEFAULT_MODE,
                    m => m,
                },
                len: f.len,
                written: 0,
                in_place,
                blob,
                hasher: Sha256::new(),
            });
        }
        for path in &header.deletes {
            let target = Path::new(path);
            let exists = target.symlink_metadata().is_ok();
            // Only a stored program may stay where its file cannot be removed: dropping
            // it from the store brings back the image's own.
            let stored = program.is(target) && self.manifest.files.contains_key(path);
            if exists && !stored {
                let parent = target.parent().unwrap_or(Path::new("/"));
                rustix::fs::access(parent, rustix::fs::Access::WRITE_OK).map_err(|e| {
                    StoreError::NotWritable {
                        path: path.clone(),
                        source: e.into(),
                    }
                })?;
            }
        }
        Ok(Staging {
            files,
            deletes: header.deletes.clone(),
        })
    }

    /// Puts a fully written staging in place: stored copies, then targets, then deletes,
    /// then the manifest (at `generation`), then stored copies nothing names any more.
    pub fn commit(
        &mut self,
        staging: Staging,
        generation: u64,
        program: &Program,
    ) -> Result<Committed, StoreError> {
        let mut committed = Committed::default();
        let mut landed = Vec::new();
        for mut f in staging.files {
            if f.written != f.len {
                return Err(StoreError::Truncated {
                    path: f.path,
                    got: f.written,
                    want: f.len,
                });
            }
            let sha256 = hex::encode(f.hasher.finalize_reset());
            f.blob.finish(BLOB_MODE)?;
            if let Some(tmp) = f.in_place.as_mut() {
                tmp.finish(f.mode)?;
            }
            landed.push((f, sha256));
        }
        // Every stored copy first: the manifest never names one that is not there.
        let mut placed = Vec::with_capacity(landed.len());
        for (f, sha256) in landed {
            let blob = self.blob(&sha256);
            f.blob.persist(&blob)?;
            placed.push((f.path, f.target, f.mode, f.in_place, sha256, blob));
        }
        let mut failure = None;
        for (path, target, mode, in_place, sha256, blob) in placed {
            match in_place {
                Some(tmp) => {
                    if let Err(e) = tmp.persist(&target) {
                        failure = Some(e);
                        break;
                    }
                    if program.is(&target) {
                        self.exec = None;
                    }
                }
                None => {
                    self.exec = Some(blob);
                    committed.program_stored = true;
                }
            }
            self.manifest.files.insert(path, Entry { sha256, mode });
            committed.written += 1;
        }
        if failure.is_none() {
            for path in &staging.deletes {
                let target = Path::new(path);
                let stored = program.is(target) && self.manifest.files.contains_key(path);
                match std::fs::remove_file(target) {
                    Ok(()) => committed.deleted += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(_) if stored => {}
                    Err(source) => {
                        failure = Some(StoreError::NotWritable {
                            path: path.clone(),
                            source,
                        });
                        break;
                    }
                }
                if program.is(target) {
                    self.exec = None;
                }
                self.manifest.files.remove(path);
            }
        }
        if failure.is_none() {
            self.manifest.generation = generation;
        }
        // What landed is recorded even when something after it failed: it is in place.
        self.write_manifest()?;
        self.remove_unnamed_blobs();
        match failure {
            Some(e) => Err(e),
            None => Ok(committed),
        }
    }

    fn write_manifest(&mut self) -> Result<(), StoreError> {
        self.manifest.version = 1;
        // Strings and numbers only: serialising cannot fail.
        let json = serde_json::to_vec_pretty(&self.manifest).unwrap_or_default();
        let mut tmp = TmpFile::create(&self.dir, MANIFEST)
            .map_err(StoreError::io("create a manifest in", &self.dir))?;
        tmp.file
            .write_all(&json)
            .map_err(StoreError::io("write", &tmp.path))?;
        tmp.finish(0o600)?;
        tmp.persist(&self.dir.join(MANIFEST))?;
        self.manifest_tx.send_replace(self.manifest.clone());
        Ok(())
    }

    fn remove_unnamed_blobs(&self) {
        let named: BTreeSet<&str> = self
            .manifest
            .files
            .values()
            .map(|e| e.sha256.as_str())
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.blobs) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') && !named.contains(name.as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// An update being written.
pub struct Staging {
    files: Vec<Staged>,
    deletes: Vec<String>,
}

struct Staged {
    path: String,
    target: PathBuf,
    mode: u32,
    len: u64,
    written: u64,
    /// The temporary file beside the target; `None` for the program where it cannot be
    /// written (it runs from the stored copy).
    in_place: Option<TmpFile>,
    blob: TmpFile,
    hasher: Sha256,
}

impl Staging {
    /// The byte count of each file, in the update's order.
    pub fn lengths(&self) -> Vec<u64> {
        self.files.iter().map(|f| f.len).collect()
    }

    pub fn path(&self, index: usize) -> &str {
        self.files.get(index).map_or("", |f| f.path.as_str())
    }

    /// Appends `bytes` to file `index`; bytes past its length are the caller's mistake.
    pub fn write(&mut self, index: usize, bytes: &[u8]) -> Result<(), StoreError> {
        let Some(f) = self.files.get_mut(index) else {
            return Err(StoreError::BadRequest(format!(
                "no file {index} in the update"
            )));
        };
        if f.written + bytes.len() as u64 > f.len {
            return Err(StoreError::BadRequest(format!(
                "more than the {} bytes of {}",
                f.len, f.path
            )));
        }
        if let Some(tmp) = f.in_place.as_mut() {
            tmp.file
                .write_all(bytes)
                .map_err(StoreError::io("write", &tmp.path))?;
        }
        f.blob
            .file
            .write_all(bytes)
            .map_err(StoreError::io("write", &f.blob.path))?;
        f.hasher.update(bytes);
        f.written += bytes.len() as u64;
        Ok(())
    }
}

/// Where a target's bytes go: its temporary file when `probe` made one; nowhere but the
/// store for the program where it cannot be written; any other target that cannot be
/// written fails the update.
fn placement<T>(
    is_program: bool,
    probe: io::Result<T>,
    path: &str,
) -> Result<Option<T>, StoreError> {
    match probe {
        Ok(tmp) => Ok(Some(tmp)),
        Err(_) if is_program => Ok(None),
        Err(source) => Err(StoreError::NotWritable {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates the temporary file that will replace `target` (and the directories above it):
/// whether that works is whether the target can be written.
fn prepare_target(target: &Path) -> io::Result<TmpFile> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    std::fs::create_dir_all(dir)?;
    if let Ok(meta) = target.symlink_metadata() {
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a directory",
            ));
        }
        // A file mounted on its own (a ConfigMap's subPath) cannot be renamed over.
        if std::fs::metadata(dir).is_ok_and(|d| d.dev() != meta.dev()) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "it is a mount point of its own (a ConfigMap or Secret subPath?), which \
                 cannot be replaced",
            ));
        }
    }
    TmpFile::create(dir, &name.to_string_lossy())
}

/// Removes the temporary files of a supervisor that was killed mid-update.
fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().contains(TMP_MARK) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What names a temporary file of tether's.
const TMP_MARK: &str = ".tether-tmp.";

/// A temporary file beside the file it will replace; removed unless persisted.
struct TmpFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TmpFile {
    /// A new file `.NAME.tether-tmp.PID.N` in `dir`, private until finished.
    fn create(dir: &Path, name: &str) -> io::Result<TmpFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}{TMP_MARK}{}.{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(TmpFile {
            path,
            file,
            persisted: false,
        })
    }

    fn finish(&mut self, mode: u32) -> Result<(), StoreError> {
        self.file
            .flush()
            .and_then(|()| {
                self.file
                    .set_permissions(std::fs::Permissions::from_mode(mode))
            })
            .map_err(StoreError::io("finish", &self.path))
    }

    fn persist(mut self, to: &Path) -> Result<(), StoreError> {
        std::fs::rename(&self.path, to).map_err(|source| StoreError::NotWritable {
            path: to.display().to_string(),
            source,
        })?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::wire::FileHeader;

    /// A directory even root cannot create files in: sysfs refuses new entries.
    const UNWRITABLE: &str = "/sys/tether-live-test";

    fn header(files: &[(&str, u32, &[u8])], deletes: &[&str]) -> ApplyHeader {
        ApplyHeader {
            generation: 1,
            files: files
                .iter()
                .map(|(path, mode, content)| FileHeader {
                    path: path.to_string(),
                    mode: *mode,
                    len: content.len() as u64,
                })
                .collect(),
            deletes: deletes.iter().map(|d| d.to_string()).collect(),
            ..ApplyHeader::default()
        }
    }

    /// Stages, writes (in two pieces each, as a stream would) and commits `files`.
    fn apply(
        store: &mut Store,
        program: &Program,
        generation: u64,
        files: &[(&str, u32, &[u8])],
        deletes: &[&str],
    ) -> Result<Committed, StoreError> {
        let mut staging = store.stage(&header(files, deletes), program)?;
        for (i, (_, _, content)) in files.iter().enumerate() {
            let (a, b) = content.split_at(content.len() / 2);
            staging.write(i, a)?;
            staging.write(i, b)?;
        }
        store.commit(staging, generation, program)
    }

    fn no_program() -> Program {
        Program::resolve("/no/such/program", None, Path::new("/"))
    }

    /// Names in `dir` that are tether's temporary files.
    fn temporaries(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(TMP_MARK))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_commit_writes_targets_copies_and_a_manifest_that_reads_back() {
        let (state, app) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut store, warning) = Store::open(state.path()).unwrap();
        assert_eq!(warning, None);
        let index = app.path().join("www/index.html");
        let script = app.path().join("bin/run");
        let (index_s, script_s) = (index.to_str().unwrap(), script.to_str().unwrap());
        let files: &[(&str, u32, &[u8])] = &[
            (index_s, 0, b"<h1>v1</h1>"),
            (script_s, 0o755, b"#!/bin/sh\n"),
        ];
        let committed = apply(&mut store, &no_program(), 3, files, &[]).unwrap();
        assert_eq!(committed.written, 2);
        assert!(!committed.program_stored);
        assert_eq!(fs::read(&index).unwrap(), b"<h1>v1</h1>");
        assert_eq!(mode(&index), 0o644, "no mode is 0644");
        assert_eq!(mode(&script), 0o755);
        let sha = wire::sha256_hex(b"<h1>v1</h1>");
        assert_eq!(store.manifest().files[index_s].sha256, sha);
        assert_eq!(
            fs::read(state.path().join(BLOBS).join(&sha)).unwrap(),
            b"<h1>v1</h1>"
        );
        assert_eq!(store.watch().borrow().generation, 3);
        for dir in [
            index.parent().unwrap(),
            script.parent().unwrap(),
            &state.path().join(BLOBS),
            state.path(),
        ] {
            assert_eq!(temporaries(dir), Vec::<String>::new(), "{}", dir.display());
        }
        let before = store.manifest().clone();
        drop(store);
        let (reopened, _) = Store::open(state.path()).unwrap();
        assert_eq!(reopened.manifest(), &before, "the manifest round-trips");
        assert_eq!(reopened.manifest().version, 1);
    }

    #[test]
    fn an_update_cut_short_writes_nothing() {
        let (state, app) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut store, _) = Store::open(state.path()).unwrap();
        let target = app.path().join("config.json");
        fs::write(&target, b"old").unwrap();
        let t = target.to_str().unwrap();
        let mut staging = store
            .stage(&header(&[(t, 0, b"0123456789")], &[]), &no_program())
            .unwrap();
        staging.write(0, b"01234").unwrap();
        assert_eq!(
            temporaries(app.path()).len(),
            1,
            "the temporary file is beside the target"
        );
        assert!(
            staging.write(0, b"56789-and-more").is_err(),
            "no more than the length"
        );
        let e = store.commit(staging, 1, &no_program()).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Truncated {
                    got: 5,
                    want: 10,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(temporaries(app.path()).is_empty());
        assert!(temporaries(&state.path().join(BLOBS)).is_empty());
        assert_eq!(store.manifest().generation, 0);

        // A staging dropped (the laptop went away) leaves nothing either.
        let staging = store
            .stage(&header(&[(t, 0, b"x")], &[]), &no_program())
            .unwrap();
        drop(staging);
        assert!(temporaries(app.path()).is_empty());
    }

    #[test]
    fn an_unwritable_target_fails_the_update_before_anything_is_written() {
        let (state, app) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut store, _) = Store::open(state.path()).unwrap();
        let ok = app.path().join("ok.txt");
        let bad = format!("{UNWRITABLE}/app.conf");
        let files: &[(&str, u32, &[u8])] =
            &[(ok.to_str().unwrap(), 0, b"fine"), (&bad, 0, b"nope")];
        match apply(&mut store, &no_program(), 1, files, &[]) {
            Err(StoreError::NotWritable { path, source }) => {
                assert_eq!(path, bad);
                assert!(!source.to_string().is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(!ok.exists(), "the writable file was not written either");
        assert!(temporaries(app.path()).is_empty());
        assert!(store.manifest().files.is_empty());
    }

    #[test]
    fn the_placement_of_a_target_that_cannot_be_written() {
        let denied = || Err::<(), _>(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(placement(false, Ok(()), "/a"), Ok(Some(()))));
        assert!(
            matches!(placement(true, Ok(()), "/a"), Ok(Some(()))),
            "in place when it can be"
        );
        assert!(
            matches!(placement(true, denied(), "/users"), Ok(None)),
            "the program: stored"
        );
        assert!(matches!(
            placement(false, denied(), "/etc/x"),
            Err(StoreError::NotWritable { path, .. }) if path == "/etc/x"
        ));
    }

    #[test]
    fn an_unwritable_program_runs_from_its_stored_copy_also_after_a_restart() {
        let state = tempfile::tempdir().unwrap();
        // procfs refuses new files, even root's: the read-only root filesystem of the case.
        let path = format!("/proc/tether-live-test-{}/users", std::process::id());
        let program = Program::resolve(&path, None, Path::new("/"));
        let (mut store, _) = Store::open(state.path()).unwrap();
        let committed = apply(
            &mut store,
            &program,
            1,
            &[(&path, 0o755, b"#!/bin/sh\nexit 0\n")],
            &[],
        )
        .unwrap();
        assert!(committed.program_stored);
        let sha = wire::sha256_hex(b"#!/bin/sh\nexit 0\n");
        let blob = state.path().join(BLOBS).join(&sha);
        assert_eq!(store.exec(), Some(blob.as_path()));
        assert_eq!(mode(&blob), BLOB_MODE);

        // The container restarts: a new supervisor replays.
        drop(store);
        let (mut store, _) = Store::open(state.path()).unwrap();
        assert_eq!(store.exec(), None);
        let replayed = store.replay(&program);
        assert_eq!((replayed.files, replayed.failed.len()), (1, 0));
        assert_eq!(store.exec(), Some(blob.as_path()));

        // Dropping the program from the store brings back the image's own.
        let committed = apply(&mut store, &program, 2, &[], &[&path]).unwrap();
        assert_eq!(committed.deleted, 0);
        assert_eq!(store.exec(), None);
        assert!(store.manifest().files.is_empty());
        assert!(!blob.exists(), "a copy nothing names is removed");
    }

    #[test]
    fn a_replay_writes_synced_files_back_into_a_fresh_container() {
        let (state, app) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let target = app.path().join("srv/main.py");
        let t = target.to_str().unwrap();
        let (mut store, _) = Store::open(state.path()).unwrap();
        apply(
            &mut store,
            &no_program(),
            4,
            &[(t, 0o600, b"print(2)\n")],
            &[],
        )
        .unwrap();
        drop(store);
        // The new container has the image's files again.
        fs::remove_dir_all(app.path().join("srv")).unwrap();
        let (mut store, _) = Store::open(state.path()).unwrap();
        assert_eq!(store.manifest().generation, 4);
        let replayed = store.replay(&no_program());
        assert_eq!((replayed.files, replayed.failed.len()), (1, 0));
        assert_eq!(fs::read(&target).unwrap(), b"print(2)\n");
        assert_eq!(mode(&target), 0o600);
        assert_eq!(store.exec(), None);
    }

    #[test]
    fn a_replay_reports_what_it_cannot_write_and_goes_on() {
        let (state, app) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let good = app.path().join("a.txt");
        let bad = format!("{UNWRITABLE}/b.txt");
        let manifest = Manifest {
            version: 1,
            generation: 2,
            files: [(good.to_str().unwrap(), b"a" as &[u8]), (&bad, b"b")]
                .into_iter()
                .map(|(p, c)| {
                    let sha = wire::sha256_hex(c);
                    fs::create_dir_all(state.path().join(BLOBS)).unwrap();
                    fs::write(state.path().join(BLOBS).join(&sha), c).unwrap();
                    (
                        p.to_owned(),
                        Entry {
                            sha256: sha,
                            mode: 0o644,
                        },
                    )
                })
                .collect(),
        };
        fs::write(
            state.path().join(MANIFEST),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let (mut store, _) = Store::open(state.path()).unwrap();
        let replayed = store.replay(&no_program());
        assert_eq!(replayed.files, 1);
        assert_eq!(replayed.failed.len(), 1);
        assert_eq!(replayed.failed[0].0, bad);
        assert_eq!(fs::read(&good).unwrap(), b"a");
    }

    #[test]
    fn deletes_remove_the_file_its_entry_and_its_copy() {
        let (state, app) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let target = app.path().join("old.js");
        let t = target.to_str().unwrap();
        let (mut store, _) = Store::open(state.path()).unwrap();
        apply(&mut store, &no_program(), 1, &[(t, 0, b"old")], &[]).unwrap();
        let missing = app.path().join("never-there.js");
        let committed = apply(
            &mut store,
            &no_program(),
            2,
            &[],
            &[t, missing.to_str().unwrap()],
        )
        .unwrap();
        assert_eq!(committed.deleted, 1, "a missing file is no error");
        assert!(!target.exists());
        assert!(store.manifest().files.is_empty());
        assert_eq!(fs::read_dir(state.path().join(BLOBS)).unwrap().count(), 0);
        assert_eq!(store.manifest().generation, 2);
    }

    #[test]
    fn bad_paths_are_refused_before_anything_is_staged() {
        let (state, app) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (store, _) = Store::open(state.path()).unwrap();
        let ok = app.path().join("x");
        let ok = ok.to_str().unwrap();
        for h in [
            header(&[("relative/x", 0, b"")], &[]),
            header(&[(&format!("{}/../y", app.path().display()), 0, b"")], &[]),
            header(&[("/.tether/bin/tether", 0, b"")], &[]),
            header(&[(ok, 0, b""), (ok, 0, b"")], &[]),
            header(&[(ok, 0, b"")], &[ok]),
        ] {
            assert!(
                matches!(
                    store.stage(&h, &no_program()),
                    Err(StoreError::BadRequest(_))
                ),
                "{h:?}"
            );
        }
        assert!(temporaries(app.path()).is_empty());
    }

    #[test]
    fn a_manifest_that_does_not_parse_is_moved_aside() {
        let state = tempfile::tempdir().unwrap();
        fs::write(state.path().join(MANIFEST), b"{not json").unwrap();
        fs::create_dir_all(state.path().join(BLOBS)).unwrap();
        fs::write(
            state.path().join(BLOBS).join(format!(".blob{TMP_MARK}1.1")),
            b"half",
        )
        .unwrap();
        let (store, warning) = Store::open(state.path()).unwrap();
        assert!(warning.unwrap().contains("does not parse"));
        assert_eq!(store.manifest(), &Manifest::default());
        assert!(state.path().join("manifest.json.bad").exists());
        assert!(
            temporaries(&state.path().join(BLOBS)).is_empty(),
            "a killed update's leftovers go"
        );
    }
}
