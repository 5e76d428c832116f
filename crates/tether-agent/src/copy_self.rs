//! `tether-agent copy-self DEST`: the live-update init container's command. It copies the
//! running binary (`/proc/self/exe`: the agent image's own tether) to DEST on the shared
//! emptyDir, where the app container runs it as its supervisor. The copy is atomic (a
//! temporary file in DEST's directory, then a rename), so a restarted init container
//! never leaves a half-written binary for the app container to run.

use std::{
    fs::{self, Permissions},
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum CopySelfError {
    #[error("usage: tether-agent copy-self DEST")]
    Usage,
    #[error("cannot create {}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot copy {} to {}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Runs `tether-agent copy-self ARGS`; returns the code to exit with. Errors are reported
/// here.
pub fn main(args: &[String]) -> i32 {
    let result = match args {
        [dest] if !dest.starts_with('-') => copy(Path::new("/proc/self/exe"), Path::new(dest)),
        _ => Err(CopySelfError::Usage),
    };
    match result {
        Ok(()) => 0,
        Err(e @ CopySelfError::Usage) => {
            eprintln!("{e}");
            2
        }
        Err(e) => {
            let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            eprintln!("tether copy-self: {e}{cause}");
            1
        }
    }
}

/// Copies `from` to `to` atomically, mode 0755, creating `to`'s directories.
pub fn copy(from: &Path, to: &Path) -> Result<(), CopySelfError> {
    let dir = to.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(|source| CopySelfError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    let name = to
        .file_name()
        .map_or("tether".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.copy-self.{}", std::process::id()));
    let copied = fs::copy(from, &tmp)
        .and_then(|_| fs::set_permissions(&tmp, Permissions::from_mode(0o755)))
        .and_then(|()| fs::rename(&tmp, to));
    copied.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        CopySelfError::Copy {
            from: from.to_owned(),
            to: to.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_executable_complete_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("tether");
        fs::write(&from, b"\x7fELF binary").unwrap();
        let to = dir.path().join("mount/bin/tether");
        copy(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"\x7fELF binary");
        assert_eq!(
            fs::metadata(&to).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // Again over the first copy (a restarted init container).
        fs::write(&from, b"\x7fELF newer").unwrap();
        copy(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"\x7fELF newer");
        let left: Vec<_> = fs::read_dir(to.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["tether"], "no temporary file stays");
    }

    #[test]
    fn a_failed_copy_leaves_the_old_binary() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("tether");
        fs::write(&to, b"old").unwrap();
        let e = copy(&dir.path().join("missing"), &to).unwrap_err();
        assert!(matches!(e, CopySelfError::Copy { .. }), "{e}");
        assert_eq!(fs::read(&to).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(main(&[]), 2);
        assert_eq!(main(&["a".into(), "b".into()]), 2);
    }
}
