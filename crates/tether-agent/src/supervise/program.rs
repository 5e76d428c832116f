//! [`Program`]: the file the app's argv\[0\] names, found as `execvp` would find it, so an
//! update can tell whether a synced file is the program itself (which may run from the
//! state directory when its own path cannot be written).

use std::{
    ffi::OsStr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// The search path `execvp` uses when PATH is unset (musl's, a superset of glibc's).
const DEFAULT_PATH: &str = "/usr/local/bin:/bin:/usr/bin";

/// The app's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// argv\[0\] as given: the app sees it unchanged, wherever it runs from.
    pub argv0: String,
    /// The file argv\[0\] names, absolute; `None` when no such file exists (yet).
    pub path: Option<PathBuf>,
    /// `path` with symlinks resolved, when it resolves: a sync target may name either.
    canonical: Option<PathBuf>,
}

impl Program {
    /// Finds `argv0`: a path when it holds a `/` (relative ones from `cwd`), else the first
    /// executable file of that name in `search` (the app's PATH).
    pub fn resolve(argv0: &str, search: Option<&OsStr>, cwd: &Path) -> Program {
        let path = if argv0.contains('/') {
            Some(cwd.join(argv0))
        } else if argv0.is_empty() {
            None
        } else {
            let search = search.unwrap_or(OsStr::new(DEFAULT_PATH));
            std::env::split_paths(search)
                .map(|dir| match dir.as_os_str().is_empty() {
                    true => cwd.join(argv0),
                    false => cwd.join(dir).join(argv0),
                })
                .find(|p| is_executable(p))
        };
        let canonical = path.as_deref().and_then(|p| std::fs::canonicalize(p).ok());
        Program {
            argv0: argv0.to_owned(),
            path,
            canonical,
        }
    }

    /// Whether a sync target at `target` is this program.
    pub fn is(&self, target: &Path) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        if path == target || self.canonical.as_deref() == Some(target) {
            return true;
        }
        match (&self.canonical, std::fs::canonicalize(target)) {
            (Some(ours), Ok(theirs)) => *ours == theirs,
            _ => false,
        }
    }

    /// What to execute: `stored` when the program runs from the state directory, else the
    /// file found, else argv\[0\] (so the error is the one `execvp` would give).
    pub fn exec_path<'a>(&'a self, stored: Option<&'a Path>) -> &'a Path {
        stored
            .or(self.path.as_deref())
            .unwrap_or(Path::new(&self.argv0))
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_is_found_as_execvp_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("app"), "not executable").unwrap();
        std::fs::write(b.join("app"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(b.join("app"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let search = std::env::join_paths([&a, &b]).unwrap();
        let p = Program::resolve("app", Some(&search), Path::new("/"));
        assert_eq!(
            p.path.as_deref(),
            Some(b.join("app").as_path()),
            "skips a.app"
        );
        assert!(p.is(&b.join("app")));
        assert!(!p.is(&a.join("app")));
        assert_eq!(p.exec_path(None), b.join("app"));
        assert_eq!(p.exec_path(Some(Path::new("/s/x"))), Path::new("/s/x"));

        let abs = Program::resolve("/users", None, Path::new("/"));
        assert_eq!(
            abs.path.as_deref(),
            Some(Path::new("/users")),
            "need not exist"
        );
        assert!(abs.is(Path::new("/users")));
        let rel = Program::resolve("./bin/app", None, dir.path());
        assert!(
            rel.is(&dir.path().join("bin/app")),
            "compared by components"
        );

        let missing = Program::resolve("no-such-program-here", Some(&search), Path::new("/"));
        assert_eq!(missing.path, None);
        assert!(!missing.is(Path::new("/no-such-program-here")));
        assert_eq!(missing.exec_path(None), Path::new("no-such-program-here"));
    }

    #[test]
    fn a_symlinked_program_is_its_target_too() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let p = Program::resolve("link", Some(dir.path().as_os_str()), Path::new("/"));
        assert!(p.is(&dir.path().join("link")));
        assert!(p.is(&std::fs::canonicalize(&real).unwrap()));
    }
}
