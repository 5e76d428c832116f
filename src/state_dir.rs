//! `.tether/`: the state tether keeps beside `tether.toml` (the apply record, the `up`
//! lock and control socket, the log history), private to the user who runs tether.
//!
//! The folder holds what another user of the machine must not read or drive (logs with
//! secrets, a socket that can trigger deploys), so it is made 0700, and narrowed to 0700
//! when an older tether or a umask left it wider. It carries a `.gitignore` of `*`.

use std::{
    fs::{self, DirBuilder, Permissions},
    io::{self, Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

/// The folder's name under a project's root.
pub const NAME: &str = ".tether";

/// `root/.tether`, made private (0700) if it is not, with its `.gitignore`.
pub fn ensure(root: &Path) -> io::Result<PathBuf> {
    let dir = root.join(NAME);
    private_dir(&dir)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        fs::write(ignore, "*\n")?;
    }
    Ok(dir)
}

/// `root/.tether/sub`, both private.
pub fn ensure_sub(root: &Path, sub: &str) -> io::Result<PathBuf> {
    let dir = ensure(root)?.join(sub);
    private_dir(&dir)?;
    Ok(dir)
}

/// Makes `dir` with mode 0700, or narrows an existing one to it.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not a folder", dir.display()),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to a new file created 0600 next to `path`, then renames it over `path`:
/// a reader sees the old content or the new, never a part, and never a wider mode.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // A fresh name each try; `create_new` never opens (or follows) anything that exists.
    let mut attempt = 0;
    let (temp, mut f) = loop {
        let mut suffix = [0u8; 6];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut suffix)?;
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".{}.tmp", hex::encode(suffix)));
        let temp = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(f) => break (temp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 10 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_private_also_when_it_existed_wider() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join(NAME)).unwrap();
        fs::set_permissions(t.path().join(NAME), Permissions::from_mode(0o755)).unwrap();
        let dir = ensure(t.path()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(fs::read_to_string(dir.join(".gitignore")).unwrap(), "*\n");
        let logs = ensure_sub(t.path(), "logs").unwrap();
        assert_eq!(mode(&logs), 0o700);
    }
}
