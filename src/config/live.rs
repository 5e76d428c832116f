//! An image's live-update rules, validated: which changed files go straight into the
//! running containers (`sync`), what runs there afterwards (`run`), whether the main
//! process restarts, and which files always need a full image build (`fall_back_on`).
//!
//! Local paths are resolved against the folder of the file that wrote them and may be
//! globs (`*` stays within one folder, `**` crosses folders); container paths are absolute.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use toml::Spanned;

use super::{
    Location,
    load::{ConfigError, Source, normalize},
    schema::{CommandDecl, LiveUpdateDecl},
};

/// Where tether's own files live in a live-updated container; no sync may write there.
pub const RESERVED: &str = "/.tether";

/// How changes to one image reach its running containers.
#[derive(Debug, Clone)]
pub struct LiveUpdate {
    pub sync: Vec<SyncRule>,
    pub run: Vec<RunRule>,
    /// Restart the container's main process after the files are in place.
    pub restart: bool,
    /// A changed file matching one of these is built into a new image instead.
    pub fall_back_on: Vec<PathPattern>,
    pub declared_at: Location,
}

/// Local files (a path or a glob) to a container path.
#[derive(Debug, Clone)]
pub struct SyncRule {
    pub from: PathPattern,
    /// Absolute; for a folder or a glob, the folder the files land in.
    pub to: String,
    pub declared_at: Location,
}

/// A command run in the container after a sync.
#[derive(Debug, Clone)]
pub struct RunRule {
    pub argv: Vec<String>,
    /// Run only when a changed file matches one of these; always when empty.
    pub trigger: Vec<PathPattern>,
    pub declared_at: Location,
}

/// A local path or glob, as written and as resolved.
#[derive(Debug, Clone)]
pub struct PathPattern {
    pub written: String,
    /// The path itself, or for a glob the folder before its first wildcard.
    base: PathBuf,
    glob: Option<GlobMatcher>,
}

impl PathPattern {
    /// Whether `path` (absolute) is this path, lies under it, or matches the glob.
    pub fn matches(&self, path: &Path) -> bool {
        match &self.glob {
            Some(glob) => glob.is_match(path),
            None => path.starts_with(&self.base),
        }
    }

    /// The path itself, or the folder a glob's matches lie under.
    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl SyncRule {
    /// Where `path` goes in the container, if this rule covers it.
    pub fn target(&self, path: &Path) -> Option<String> {
        if !self.from.matches(path) {
            return None;
        }
        let rel = path.strip_prefix(&self.from.base).ok()?;
        if rel.as_os_str().is_empty() {
            return Some(self.to.clone());
        }
        Some(format!(
            "{}/{}",
            self.to.trim_end_matches('/'),
            rel.to_string_lossy()
        ))
    }
}

impl LiveUpdate {
    /// The first `fall_back_on` pattern `path` matches.
    pub fn falls_back_on(&self, path: &Path) -> Option<&PathPattern> {
        self.fall_back_on.iter().find(|p| p.matches(path))
    }

    /// The container path of a local file, by the first sync rule that covers it.
    pub fn target(&self, path: &Path) -> Option<String> {
        self.sync.iter().find_map(|r| r.target(path))
    }
}

/// Validates `[images.NAME.live_update]`.
pub(super) fn live_update(
    src: &Source,
    decl: &Spanned<LiveUpdateDecl>,
) -> Result<LiveUpdate, ConfigError> {
    let declared_at = src.loc(decl);
    let d = decl.get_ref();
    if d.sync.is_empty() {
        return Err(ConfigError::at(
            declared_at,
            "live_update syncs nothing: add `sync = [{ from = \"src\", to = \"/app/src\" }]`",
        ));
    }
    let sync = d
        .sync
        .iter()
        .map(|s| {
            let rule = s.get_ref();
            Ok(SyncRule {
                from: pattern(src, &rule.from)?,
                to: container_path(src, &rule.to)?,
                declared_at: src.loc(s),
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let run = d
        .run
        .iter()
        .map(|r| {
            let rule = r.get_ref();
            let argv = match rule.cmd.get_ref() {
                CommandDecl::Argv(argv) => argv.clone(),
                CommandDecl::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
            };
            if argv.first().is_none_or(|a| a.trim().is_empty()) {
                return Err(ConfigError::at(
                    src.loc(&rule.cmd),
                    "run command is empty: expected [\"program\", \"arg\"] or \"a shell line\"",
                ));
            }
            Ok(RunRule {
                argv,
                trigger: rule
                    .trigger
                    .iter()
                    .map(|t| pattern(src, t))
                    .collect::<Result<_, _>>()?,
                declared_at: src.loc(r),
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let fall_back_on = d
        .fall_back_on
        .iter()
        .map(|p| pattern(src, p))
        .collect::<Result<_, _>>()?;
    Ok(LiveUpdate {
        sync,
        run,
        restart: d.restart,
        fall_back_on,
        declared_at,
    })
}

fn pattern(src: &Source, v: &Spanned<String>) -> Result<PathPattern, ConfigError> {
    let written = v.get_ref().clone();
    if written.trim().is_empty() {
        return Err(ConfigError::at(src.loc(v), "empty path"));
    }
    let full = normalize(&src.dir.join(&written));
    let wild = |c: &Component| {
        c.as_os_str()
            .to_string_lossy()
            .contains(['*', '?', '[', '{'])
    };
    if !full.components().any(|c| wild(&c)) {
        return Ok(PathPattern {
            written,
            base: full,
            glob: None,
        });
    }
    let base: PathBuf = full.components().take_while(|c| !wild(c)).collect();
    let glob = GlobBuilder::new(&full.to_string_lossy())
        .literal_separator(true)
        .build()
        .map_err(|e| ConfigError::at(src.loc(v), format!("`{written}` is not a glob: {e}")))?
        .compile_matcher();
    Ok(PathPattern {
        written,
        base,
        glob: Some(glob),
    })
}

fn container_path(src: &Source, v: &Spanned<String>) -> Result<String, ConfigError> {
    let path = v.get_ref();
    let bad = |why: &str| ConfigError::at(src.loc(v), format!("sync target `{path}` {why}"));
    if !path.starts_with('/') {
        return Err(bad(
            "must be an absolute path in the container, like \"/app/src\"",
        ));
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(bad("must not contain `..`"));
    }
    if Path::new(path).starts_with(RESERVED) {
        return Err(bad(&format!(
            "lies in {RESERVED}, which tether keeps for itself"
        )));
    }
    if path == "/" {
        return Err(bad("would replace the whole filesystem"));
    }
    Ok(path.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use crate::config::{FILE_NAME, load};

    /// A project whose image `svc` has `rules` as its live update.
    fn project(dir: &Path, rules: &str) -> Result<crate::config::Project, String> {
        fs::create_dir_all(dir.join("k8s")).unwrap();
        fs::write(dir.join("k8s/svc.yaml"), "").unwrap();
        fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(
            dir.join(FILE_NAME),
            format!(
                "[images.svc]\n[images.svc.live_update]\n{rules}\n\
                 [resources.svc]\nmanifests = [\"k8s/svc.yaml\"]\n"
            ),
        )
        .unwrap();
        load(&dir.join(FILE_NAME)).map_err(|e| e.to_string())
    }

    #[test]
    fn sync_rules_map_files_folders_and_globs_into_the_container() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let p = project(
            d,
            r#"sync = [
  { from = ".build/svc", to = "/svc" },
  { from = "static", to = "/www/" },
  { from = "src/**/*.py", to = "/app" },
]
restart = true
fall_back_on = ["requirements.txt", "src/*.lock"]
run = [{ cmd = "pip install -r requirements.txt", trigger = ["requirements.txt"] }, { cmd = ["/svc", "migrate"] }]"#,
        )
        .unwrap();
        let live = p.images["svc"].live_update.as_ref().unwrap();
        let at = |rel: &str| live.target(&d.join(rel));
        assert_eq!(at(".build/svc").as_deref(), Some("/svc"));
        assert_eq!(at("static/css/a.css").as_deref(), Some("/www/css/a.css"));
        assert_eq!(at("src/pkg/mod.py").as_deref(), Some("/app/pkg/mod.py"));
        assert_eq!(at("src/pkg/mod.rs"), None);
        assert_eq!(at(".build/svc2"), None, "a sibling with a longer name");
        assert!(live.restart);
        assert_eq!(
            live.falls_back_on(&d.join("src/Cargo.lock"))
                .map(|p| p.written.as_str()),
            Some("src/*.lock")
        );
        assert!(live.falls_back_on(&d.join("src/pkg/x.lock")).is_none());
        assert_eq!(live.run[0].argv[..2], ["/bin/sh", "-c"]);
        assert!(live.run[0].trigger[0].matches(&d.join("requirements.txt")));
        assert_eq!(live.run[1].argv, ["/svc", "migrate"]);
    }

    #[test]
    fn invalid_rules_name_file_line_and_column() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let file = d.join(FILE_NAME).display().to_string();
        for (rules, at, says) in [
            (
                r#"sync = [{ from = "src", to = "app" }]"#,
                "3:30",
                "absolute path",
            ),
            (
                r#"sync = [{ from = "src", to = "/a/../b" }]"#,
                "3:30",
                "`..`",
            ),
            (
                r#"sync = [{ from = "src", to = "/.tether/x" }]"#,
                "3:30",
                "keeps for itself",
            ),
            (
                r#"sync = [{ from = "src/[", to = "/a" }]"#,
                "3:18",
                "not a glob",
            ),
            (r#"restart = true"#, "2:1", "syncs nothing"),
            (
                "sync = [{ from = \"a\", to = \"/a\" }]\nrun = [{ cmd = [] }]",
                "4:16",
                "run command is empty",
            ),
            (
                r#"sync = [{ from = "a", to = "/a", mode = 1 }]"#,
                "3:34",
                "unknown key `mode`",
            ),
        ] {
            let e = project(d, rules).unwrap_err();
            assert!(e.starts_with(&format!("{file}:{at}: ")), "{rules}: {e}");
            assert!(e.contains(says), "{rules}: {e}");
        }
    }
}
