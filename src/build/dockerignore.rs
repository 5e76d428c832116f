//! `.dockerignore` as the Docker engine reads it: patterns match a path relative to the
//! context or any of its parent folders, `*` stays within one path segment, `**` crosses
//! them, `!` re-includes, and the last matching pattern wins.

use std::path::Path;

use globset::{Glob, GlobBuilder, GlobMatcher};

/// The rules of one context's `.dockerignore` (empty when there is none).
#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    matcher: GlobMatcher,
    include: bool,
}

impl DockerIgnore {
    /// The rules for building `dockerfile` in `context`: `<Dockerfile>.dockerignore` beside
    /// the Dockerfile when there is one (as BuildKit reads it), else `<context>/.dockerignore`;
    /// neither ignores nothing.
    pub fn for_build(context: &Path, dockerfile: &Path) -> std::io::Result<DockerIgnore> {
        let mut own = dockerfile.as_os_str().to_owned();
        own.push(".dockerignore");
        for candidate in [std::path::PathBuf::from(own), context.join(".dockerignore")] {
            match std::fs::read_to_string(&candidate) {
                Ok(text) => return Ok(DockerIgnore::parse(&text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(DockerIgnore::default())
    }

    pub fn parse(text: &str) -> DockerIgnore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|line| {
                let (include, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
                let pattern = pattern.trim_end_matches('/');
                if pattern.is_empty() {
                    return None;
                }
                // A pattern Docker would reject is skipped rather than failing the build.
                let glob: Glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .ok()?;
                Some(Rule {
                    matcher: glob.compile_matcher(),
                    include,
                })
            })
            .collect();
        DockerIgnore { rules }
    }

    /// Whether `rel` (relative to the context, `/`-separated) stays out of the context.
    pub fn is_excluded(&self, rel: &Path) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rel
                .ancestors()
                .any(|a| !a.as_os_str().is_empty() && rule.matcher.is_match(a))
            {
                excluded = !rule.include;
            }
        }
        excluded
    }

    /// Whether any rule can bring back something under an excluded folder; when none
    /// can, an excluded folder is skipped without being read.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.include)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_then_exception_keeps_only_that_folder() {
        let d = DockerIgnore::parse("# only the binary\n*\n!.build\n");
        assert!(d.is_excluded(Path::new("src/main.rs")));
        assert!(d.is_excluded(Path::new("Cargo.toml")));
        assert!(!d.is_excluded(Path::new(".build/payments")));
    }

    #[test]
    fn star_does_not_cross_folders_but_double_star_does() {
        let d = DockerIgnore::parse("*.log\n**/*.tmp\n");
        assert!(d.is_excluded(Path::new("a.log")));
        assert!(!d.is_excluded(Path::new("logs/a.log")));
        assert!(d.is_excluded(Path::new("x/y/z.tmp")));
    }

    #[test]
    fn excluding_a_folder_excludes_its_files() {
        let d = DockerIgnore::parse("node_modules/\n");
        assert!(d.is_excluded(Path::new("node_modules/react/index.js")));
        assert!(!d.has_exceptions());
    }
}
