//! Reads a root `tether.toml` and its includes, and validates them into a [`Project`].
//!
//! Every error carries the `file:line:col` of the value at fault and says what was
//! expected, because a config error is read by someone who has to go and fix it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use toml::Spanned;

use super::{
    FILE_NAME, HelmChart, HostBuild, Image, Location, Manifests, PortForward, Project, Resource,
    schema::{File, HelmDecl, ImageDecl, ResourceDecl},
};

/// A file's profiles by name, and its `default_profile`.
type Profiles = (BTreeMap<String, super::Profile>, Option<String>);

/// The file names that make a folder a kustomization, as kustomize looks for them.
const KUSTOMIZATIONS: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// A config problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
}

impl ConfigError {
    pub(super) fn at(at: Location, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at,
            message: message.into(),
        }
    }
}

/// Loads the project whose root file is `path`.
pub fn load(path: &Path) -> Result<Project, ConfigError> {
    let root_file = absolute(path);
    let root = root_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut loader = Loader {
        images: BTreeMap::new(),
        resources: BTreeMap::new(),
        visited: BTreeSet::new(),
        pending_deps: Vec::new(),
    };
    let (top, (profiles, default_profile)) = loader.read_file(&root_file, None)?;
    loader.check_dependencies()?;
    for p in profiles.values() {
        super::overrides::check(&p.name, &p.set, &loader.resources)?;
    }
    super::profile::check_shared(profiles.values(), &loader.resources)?;
    Ok(Project {
        root,
        allow_contexts: top.allow_contexts,
        registry: top.registry.map(Spanned::into_inner),
        images: loader.images,
        resources: loader.resources,
        profiles,
        default_profile,
    })
}

struct Loader {
    images: BTreeMap<String, Image>,
    resources: BTreeMap<String, Resource>,
    /// Files already read: a file included twice (or in a cycle) is read once.
    visited: BTreeSet<PathBuf>,
    /// `depends_on` entries, checked once every file is in.
    pending_deps: Vec<(String, Location)>,
}

/// One file's text and the helpers to point into it.
pub(super) struct Source {
    path: PathBuf,
    pub(super) dir: PathBuf,
    text: String,
}

impl Source {
    pub(super) fn loc<T>(&self, v: &Spanned<T>) -> Location {
        Location::of_span(self.path.clone(), &self.text, v.span())
    }

    /// Resolves a path written in this file; it must exist.
    /// A `manifests` entry: a YAML file, or a folder with a kustomization.
    fn manifests(&self, v: &Spanned<String>) -> Result<Manifests, ConfigError> {
        let p = self.existing_path(v, "manifest")?;
        if !p.is_dir() {
            return Ok(Manifests::File(p));
        }
        if KUSTOMIZATIONS.iter().any(|k| p.join(k).is_file()) {
            return Ok(Manifests::Kustomize(p));
        }
        Err(ConfigError::at(
            self.loc(v),
            format!(
                "manifest `{}` is a folder without a kustomization.yaml: name its YAML files, \
                 or add a kustomization",
                v.get_ref()
            ),
        ))
    }

    /// `helm = { chart, values, set, release }`: the chart must be a folder with a
    /// Chart.yaml, the values files must exist.
    fn helm(&self, decl: &Spanned<HelmDecl>, resource: &str) -> Result<Manifests, ConfigError> {
        let h = decl.get_ref();
        let chart = self.existing_path(&h.chart, "chart")?;
        if !chart.join("Chart.yaml").is_file() {
            return Err(ConfigError::at(
                self.loc(&h.chart),
                format!(
                    "chart `{}` has no Chart.yaml ({})",
                    h.chart.get_ref(),
                    chart.display()
                ),
            ));
        }
        let values = h
            .values
            .iter()
            .map(|v| self.existing_path(v, "values file"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Manifests::Helm(HelmChart {
            chart,
            values,
            set: h.set.clone(),
            release: h.release.clone().unwrap_or_else(|| resource.to_owned()),
        }))
    }

    fn existing_path(&self, v: &Spanned<String>, what: &str) -> Result<PathBuf, ConfigError> {
        let p = normalize(&self.dir.join(v.get_ref()));
        if p.exists() {
            Ok(p)
        } else {
            Err(ConfigError::at(
                self.loc(v),
                format!("{what} `{}` does not exist ({})", v.get_ref(), p.display()),
            ))
        }
    }
}

impl Loader {
    /// Reads one file and, depth first, the files it includes. Returns the parsed file and
    /// its profiles so the caller can take project-wide settings from the root.
    fn read_file(
        &mut self,
        path: &Path,
        included_at: Option<Location>,
    ) -> Result<(File, Profiles), ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| match included_at {
            Some(at) if source.kind() == std::io::ErrorKind::NotFound => ConfigError::at(
                at,
                format!("included folder has no {FILE_NAME} ({})", path.display()),
            ),
            _ => ConfigError::Read {
                path: path.to_path_buf(),
                source,
            },
        })?;
        self.visited.insert(path.to_path_buf());
        let src = Source {
            path: path.to_path_buf(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            text,
        };
        let file: File = toml::from_str(&src.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let message =
                super::suggest::unknown_key(e.message()).unwrap_or_else(|| e.message().to_owned());
            ConfigError::at(Location::at(src.path.clone(), &src.text, offset), message)
        })?;

        let namespace = match &file.namespace {
            Some(ns) => {
                check_dns_label(&src, ns, "namespace")?;
                ns.get_ref().clone()
            }
            None => "default".to_owned(),
        };
        for (name, decl) in &file.images {
            let image = image(&src, name, decl)?;
            if let Some(prev) = self.images.get(name) {
                return Err(ConfigError::at(
                    image.declared_at,
                    format!("image `{name}` is already declared at {}", prev.declared_at),
                ));
            }
            self.images.insert(name.clone(), image);
        }
        for (name, decl) in &file.resources {
            let resource = self.resource(&src, name, decl, &namespace)?;
            if let Some(prev) = self.resources.get(name) {
                return Err(ConfigError::at(
                    resource.declared_at,
                    format!(
                        "resource `{name}` is already declared at {}",
                        prev.declared_at
                    ),
                ));
            }
            self.resources.insert(name.clone(), resource);
        }
        for inc in &file.include {
            let dir = src.existing_path(inc, "included folder")?;
            let child = dir.join(FILE_NAME);
            if !self.visited.contains(&child) {
                self.read_file(&child, Some(src.loc(inc)))?;
            }
        }
        // Checked in every file, so a folder's own profiles are right when it is the
        // root; only the root's are used.
        let profiles = super::profile::profiles(&src, &file)?;
        Ok((file, profiles))
    }

    fn resource(
        &mut self,
        src: &Source,
        name: &str,
        decl: &Spanned<ResourceDecl>,
        file_namespace: &str,
    ) -> Result<Resource, ConfigError> {
        let declared_at = src.loc(decl);
        let d = decl.get_ref();
        check_name(&declared_at, name, "resource")?;
        let namespace = match &d.namespace {
            Some(ns) => {
                check_dns_label(src, ns, "namespace")?;
                ns.get_ref().clone()
            }
            None => file_namespace.to_owned(),
        };
        let mut manifests = d
            .manifests
            .iter()
            .map(|m| src.manifests(m))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(helm) = &d.helm {
            manifests.push(src.helm(helm, name)?);
        }
        if manifests.is_empty() {
            return Err(ConfigError::at(
                declared_at,
                format!(
                    "resource `{name}` lists no manifests: expected `manifests = [\"k8s/{name}.yaml\"]`, \
                     a kustomization folder in `manifests`, or `helm = {{ chart = \"chart\" }}`"
                ),
            ));
        }
        let port_forwards = d
            .port_forwards
            .iter()
            .map(|pf| parse_port_forward(pf.get_ref()).map_err(|m| ConfigError::at(src.loc(pf), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let command = |decl: &Option<Spanned<Vec<String>>>, key: &str| match decl {
            Some(argv) if argv.get_ref().is_empty() || argv.get_ref()[0].is_empty() => {
                Err(ConfigError::at(
                    src.loc(argv),
                    format!(
                        "`{key}` is empty: expected a program and its arguments, as in `{key} = [\"check\", \"--quiet\"]`"
                    ),
                ))
            }
            Some(argv) => Ok(Some(argv.get_ref().clone())),
            None => Ok(None),
        };
        let ready_cmd = command(&d.ready_cmd, "ready_cmd")?;
        let status_cmd = command(&d.status_cmd, "status_cmd")?;
        for dep in &d.depends_on {
            self.pending_deps
                .push((dep.get_ref().clone(), src.loc(dep)));
        }
        Ok(Resource {
            name: name.to_owned(),
            namespace,
            force_namespace: false,
            manifests,
            depends_on: d.depends_on.iter().map(|s| s.get_ref().clone()).collect(),
            port_forwards,
            ready_cmd,
            status_cmd,
            overrides: super::Overrides::default(),
            declared_at,
        })
    }

    /// Every dependency names a resource, and none depends on itself through others.
    fn check_dependencies(&self) -> Result<(), ConfigError> {
        for (dep, at) in &self.pending_deps {
            if !self.resources.contains_key(dep) {
                let known: Vec<_> = self.resources.keys().map(String::as_str).collect();
                return Err(ConfigError::at(
                    at.clone(),
                    format!(
                        "depends_on names unknown resource `{dep}` (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        // Depth-first search for a cycle; report it with its path.
        fn walk<'a>(
            resources: &'a BTreeMap<String, Resource>,
            name: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Result<(), ConfigError> {
            if let Some(i) = stack.iter().position(|s| *s == name) {
                let mut cycle = stack[i..].to_vec();
                cycle.push(name);
                return Err(ConfigError::at(
                    resources[name].declared_at.clone(),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                ));
            }
            if !done.insert(name) {
                return Ok(());
            }
            stack.push(name);
            for dep in &resources[name].depends_on {
                walk(resources, dep, stack, done)?;
            }
            stack.pop();
            Ok(())
        }
        let mut done = BTreeSet::new();
        for name in self.resources.keys() {
            walk(&self.resources, name, &mut Vec::new(), &mut done)?;
        }
        Ok(())
    }
}

fn image(src: &Source, name: &str, decl: &Spanned<ImageDecl>) -> Result<Image, ConfigError> {
    let declared_at = src.loc(decl);
    let d = decl.get_ref();
    check_name(&declared_at, name, "image")?;
    let context = src.existing_path(&d.context, "build context")?;
    if !context.is_dir() {
        return Err(ConfigError::at(
            src.loc(&d.context),
            "build context must be a folder",
        ));
    }
    let dockerfile = match &d.dockerfile {
        Some(df) => src.existing_path(df, "dockerfile")?,
        None => {
            let df = context.join("Dockerfile");
            if !df.exists() {
                return Err(ConfigError::at(
                    declared_at,
                    format!(
                        "image `{name}` has no `dockerfile` and {} does not exist",
                        df.display()
                    ),
                ));
            }
            df
        }
    };
    let host_build = match &d.host_build {
        Some(argv) if argv.get_ref().is_empty() => {
            return Err(ConfigError::at(
                src.loc(argv),
                "host_build is empty: expected a command and its arguments, like [\"make\", \"bin\"]",
            ));
        }
        Some(argv) => Some(HostBuild {
            argv: argv.get_ref().clone(),
            dir: src.dir.clone(),
        }),
        None => None,
    };
    let inputs = match &d.inputs {
        Some(list) => list
            .iter()
            .map(|i| src.existing_path(i, "input"))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![context.clone()],
    };
    let live_update = d
        .live_update
        .as_ref()
        .map(|l| super::live::live_update(src, l))
        .transpose()?;
    Ok(Image {
        name: name.to_owned(),
        context,
        dockerfile,
        host_build,
        inputs,
        live_update,
        declared_at,
    })
}

/// Image and resource names become parts of image references, labels and log prefixes.
pub(super) fn check_name(at: &Location, name: &str, what: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::at(
            at.clone(),
            format!("{what} name `{name}` must be lower-case letters, digits and '-' (at most 63)"),
        ))
    }
}

fn check_dns_label(src: &Source, v: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
    check_name(&src.loc(v), v.get_ref(), what)
}

/// `"8080:80"` forwards local 8080 to 80; `"8080"` forwards 8080 to 8080.
fn parse_port_forward(s: &str) -> Result<PortForward, String> {
    let expected =
        || format!("port forward `{s}`: expected \"LOCAL:REMOTE\" like \"8080:80\", or one port");
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(expected)
    };
    match s.split_once(':') {
        Some((l, r)) => Ok(PortForward {
            local: port(l)?,
            remote: port(r)?,
        }),
        None => {
            let p = port(s)?;
            Ok(PortForward {
                local: p,
                remote: p,
            })
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        normalize(p)
    } else {
        normalize(&std::env::current_dir().unwrap_or_default().join(p))
    }
}

/// Folds `.` and `..` lexically, so paths in messages and digests are stable.
pub(super) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn alice() -> crate::cluster::Identity {
        crate::cluster::Identity {
            username: "alice".into(),
            groups: vec!["tether:developers".into()],
        }
    }

    fn err(dir: &Path) -> String {
        load(&dir.join(FILE_NAME)).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_project_with_includes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(
            d,
            "tether.toml",
            "include = [\"svc\"]\nallow_contexts = [\"stage\"]\n",
        );
        write(d, "svc/k8s/svc.yaml", "");
        write(d, "svc/Dockerfile", "FROM scratch\n");
        write(d, "svc/src/main.rs", "");
        write(
            d,
            "svc/tether.toml",
            r#"
namespace = "api"
[images.svc]
inputs = ["src"]
host_build = ["make"]
[resources.svc]
manifests = ["k8s/svc.yaml"]
port_forwards = ["8081:8080", "9000"]
"#,
        );
        let p = load(&d.join(FILE_NAME)).unwrap();
        assert_eq!(p.allow_contexts, ["stage"]);
        let r = &p.resources["svc"];
        assert_eq!(r.namespace, "api");
        assert_eq!(
            r.port_forwards,
            [
                PortForward {
                    local: 8081,
                    remote: 8080
                },
                PortForward {
                    local: 9000,
                    remote: 9000
                }
            ]
        );
        let i = &p.images["svc"];
        assert_eq!(i.inputs, [d.join("svc/src")]);
        assert_eq!(i.dockerfile, d.join("svc/Dockerfile"));
        assert_eq!(i.host_build.as_ref().unwrap().dir, d.join("svc"));
    }

    #[test]
    fn a_kustomization_folder_and_a_chart_are_manifests_and_a_bare_folder_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "k8s/overlays/dev/kustomization.yaml", "resources: []\n");
        write(
            d,
            "chart/Chart.yaml",
            "apiVersion: v2\nname: a\nversion: 0.1.0\n",
        );
        write(d, "values-dev.yaml", "replicas: 2\n");
        write(
            d,
            "tether.toml",
            "namespace = \"api\"\n[resources.a]\nmanifests = [\"k8s/overlays/dev\"]\n\
             helm = { chart = \"chart\", values = [\"values-dev.yaml\"], set = { x = \"1\" } }\n",
        );
        let p = load(&d.join(FILE_NAME)).unwrap();
        let r = &p.resources["a"];
        assert_eq!(
            r.manifests,
            [
                Manifests::Kustomize(d.join("k8s/overlays/dev")),
                Manifests::Helm(HelmChart {
                    chart: d.join("chart"),
                    values: vec![d.join("values-dev.yaml")],
                    set: [("x".to_owned(), "1".to_owned())].into(),
                    release: "a".into(),
                }),
            ]
        );
        assert!(r.renders_from(&d.join("chart/templates/deployment.yaml")));
        assert!(r.renders_from(&d.join("values-dev.yaml")));
        assert!(!r.renders_from(&d.join("src/main.rs")));

        write(d, "k8s/plain/a.yaml", "");
        write(
            d,
            "tether.toml",
            "namespace = \"api\"\n[resources.a]\nmanifests = [\"k8s/plain\"]\n",
        );
        let e = err(d);
        assert!(
            e.contains(
                "tether.toml:3:14: manifest `k8s/plain` is a folder without a kustomization.yaml"
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "tether.toml",
            "namespace = \"api\"\n[resources.a]\nmanifest = []\n",
        );
        let e = err(t.path());
        assert!(
            e.contains("tether.toml:3:1: unknown key `manifest`; did you mean `manifests`?"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "tether.toml",
            "namespace = \"api\"\ninclude = [\"a\"\n",
        );
        let e = err(t.path());
        assert!(e.contains("tether.toml:2:"), "{e}");
    }

    #[test]
    fn missing_manifest_points_at_the_entry() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "tether.toml",
            "[resources.a]\nmanifests = [\"nope.yaml\"]\n",
        );
        let e = err(t.path());
        assert!(
            e.contains("tether.toml:2:14: manifest `nope.yaml` does not exist"),
            "{e}"
        );
    }

    #[test]
    fn bad_port_forward_says_what_was_expected() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "a.yaml", "");
        write(
            t.path(),
            "tether.toml",
            "[resources.a]\nmanifests = [\"a.yaml\"]\nport_forwards = [\"80:http\"]\n",
        );
        let e = err(t.path());
        assert!(
            e.contains("tether.toml:3:18: port forward `80:http`: expected"),
            "{e}"
        );
    }

    #[test]
    fn unknown_dependency_and_cycles_are_refused() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "a.yaml", "");
        write(
            t.path(),
            "tether.toml",
            "[resources.a]\nmanifests = [\"a.yaml\"]\ndepends_on = [\"b\"]\n",
        );
        assert!(err(t.path()).contains("tether.toml:3:15: depends_on names unknown resource `b`"));
        write(
            t.path(),
            "tether.toml",
            "[resources.a]\nmanifests = [\"a.yaml\"]\ndepends_on = [\"b\"]\n[resources.b]\nmanifests = [\"a.yaml\"]\ndepends_on = [\"a\"]\n",
        );
        assert!(
            err(t.path()).contains("dependency cycle: a -> b -> a"),
            "{}",
            err(t.path())
        );
    }

    #[test]
    fn deploy_order_puts_dependencies_first() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "a.yaml", "");
        write(
            t.path(),
            "tether.toml",
            "[resources.a]\nmanifests = [\"a.yaml\"]\ndepends_on = [\"c\"]\n[resources.b]\nmanifests = [\"a.yaml\"]\n[resources.c]\nmanifests = [\"a.yaml\"]\ndepends_on = [\"b\"]\n",
        );
        let p = load(&t.path().join(FILE_NAME)).unwrap();
        assert_eq!(p.deploy_order(), ["b", "c", "a"]);
    }

    #[test]
    fn profiles_are_read_and_a_run_in_one_stays_in_its_namespace() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "a.yaml", "");
        write(
            d,
            "tether.toml",
            r#"namespace = "api"
default_profile = "dev"
[profiles.dev]
namespace = "dev-{user}"
contexts = ["stage"]
quota = { pods = "10", "requests.memory" = "1Gi" }
defaults = { memory = "64Mi" }
[resources.a]
manifests = ["a.yaml"]
"#,
        );
        let p = load(&d.join(FILE_NAME)).unwrap();
        assert_eq!(p.default_profile.as_deref(), Some("dev"));
        let dev = p.profiles["dev"].clone();
        assert_eq!(dev.contexts, ["stage"]);
        assert_eq!(dev.quota["requests.memory"], "1Gi");
        assert_eq!(dev.namespace_at.line, 4);
        let ns = dev.namespace_for("Alice@Example.com").unwrap();
        assert_eq!(ns, "dev-alice-example-com");
        let run = p.in_profile(&dev, &ns).unwrap();
        let a = &run.resources["a"];
        assert_eq!(a.namespace, ns);
        assert!(a.force_namespace);
        assert_eq!(a.depends_on, ["profile-dev"]);
        let base = &run.resources["profile-dev"];
        let Manifests::Objects(objects) = &base.manifests[0] else {
            panic!("tether's own objects: {:?}", base.manifests);
        };
        let kinds: Vec<_> = objects.iter().map(|o| o["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [Some("Namespace"), Some("ResourceQuota"), Some("LimitRange")]
        );
        assert_eq!(objects[1]["spec"]["hard"]["pods"], "10");
        assert_eq!(run.deploy_order(), ["profile-dev", "a"]);

        // A reload while `up` runs goes through the run's profile again.
        let again = load(&d.join(FILE_NAME)).unwrap();
        let reloaded = crate::config::ProfileRun {
            name: "dev".into(),
            user: "alice".into(),
            admission: crate::policy::Admission::open(alice()),
        }
        .apply(again)
        .unwrap();
        assert_eq!(reloaded.resources["a"].namespace, "dev-alice");
        let gone = crate::config::ProfileRun {
            name: "stage".into(),
            user: "alice".into(),
            admission: crate::policy::Admission::open(alice()),
        }
        .apply(load(&d.join(FILE_NAME)).unwrap())
        .unwrap_err()
        .to_string();
        assert!(
            gone.contains(
                "profile `stage`, which this run uses, is no longer declared (known: dev)"
            ),
            "{gone}"
        );

        // A reload is decided by the policy the run started under: a resource it does
        // not allow is refused at its declaration.
        let policy = crate::policy::parse(
            Path::new("policy.toml"),
            "[[rule]]\nname = \"dev-a\"\nprofiles = [\"dev\"]\nresources = [\"b\"]\nusers = [\"alice\"]\n",
        )
        .unwrap();
        let refused = crate::config::ProfileRun {
            name: "dev".into(),
            user: "alice".into(),
            admission: crate::policy::Admission {
                policy,
                who: alice(),
            },
        }
        .apply(load(&d.join(FILE_NAME)).unwrap())
        .unwrap_err()
        .to_string();
        assert!(
            refused.ends_with(
                "tether.toml:8:1: alice may not instantiate a in dev: rule dev-a governs dev and does not name a"
            ),
            "{refused}"
        );
    }

    #[test]
    fn bad_profiles_name_file_line_and_column() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(
            d,
            "tether.toml",
            "default_profile = \"prod\"\n[profiles.dev]\nnamespace = \"dev-{user}\"\n",
        );
        let e = err(d);
        assert!(
            e.contains(
                "tether.toml:1:19: default_profile names unknown profile `prod` (known: dev)"
            ),
            "{e}"
        );
        write(
            d,
            "tether.toml",
            "[profiles.dev]\nnamespace = \"dev-{name}\"\n",
        );
        let e = err(d);
        assert!(
            e.contains("tether.toml:2:13: profile `dev`: namespace `dev-{name}`: the only placeholder is {user}"),
            "{e}"
        );
        write(
            d,
            "tether.toml",
            "[profiles.dev]\nnamespace = \"dev-{user}\"\nquota = { pods = \"\" }\n",
        );
        assert!(err(d).contains("tether.toml:3:18: profile `dev`: quota `pods` is empty"));
    }

    #[test]
    fn a_profile_sets_values_over_a_resources_manifests() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "a.yaml", "");
        write(d, "chart/Chart.yaml", "name: c\nversion: 0.1.0\n");
        write(
            d,
            "tether.toml",
            r#"[profiles.dev]
namespace = "dev-{user}"
[profiles.dev.set.web]
replicas = 2
memory = "512Mi"
cpu = "500m"
env = { MODE = "dev" }
[profiles.dev.set.db]
helm = { "primary.persistence" = "false" }
[resources.web]
manifests = ["a.yaml"]
[resources.db]
helm = { chart = "chart", set = { "a" = "1", "primary.persistence" = "true" } }
"#,
        );
        let p = load(&d.join(FILE_NAME)).unwrap();
        assert_eq!(
            p.resources["web"].overrides,
            super::super::Overrides::default()
        );
        let dev = p.profiles["dev"].clone();
        let run = p.in_profile(&dev, "dev-alice").unwrap();
        let web = &run.resources["web"].overrides;
        assert_eq!(web.replicas, Some(2));
        assert_eq!(web.memory.as_deref(), Some("512Mi"));
        assert_eq!(web.cpu.as_deref(), Some("500m"));
        assert_eq!(web.env["MODE"], "dev");
        let Manifests::Helm(chart) = &run.resources["db"].manifests[0] else {
            panic!("a chart: {:?}", run.resources["db"].manifests);
        };
        assert_eq!(
            chart.set["primary.persistence"], "false",
            "the profile's value wins"
        );
        assert_eq!(chart.set["a"], "1");
    }

    #[test]
    fn a_bad_set_names_file_line_and_column() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "a.yaml", "");
        let with = |set: &str| {
            write(
                d,
                "tether.toml",
                &format!(
                    "[profiles.dev]\nnamespace = \"dev-{{user}}\"\n{set}\n[resources.web]\nmanifests = [\"a.yaml\"]\n"
                ),
            );
            err(d)
        };
        let e = with("[profiles.dev.set.web]\nreplica = 2");
        assert!(
            e.contains("tether.toml:4:1: unknown key `replica`; did you mean `replicas`?"),
            "{e}"
        );
        let e = with("[profiles.dev.set.wbe]\nreplicas = 2");
        assert!(
            e.contains(
                "tether.toml:3:1: profile `dev`: set names unknown resource `wbe` (known: web)"
            ),
            "{e}"
        );
        let e = with("[profiles.dev.set.web]\nhelm = { a = \"1\" }");
        assert!(
            e.contains("tether.toml:4:8: profile `dev`: set.web.helm sets Helm values, and resource `web` has no `helm` chart"),
            "{e}"
        );
        let e = with("[profiles.dev.set.web]\nmemory = \" \"");
        assert!(
            e.contains("tether.toml:4:10: profile `dev`: set.web.memory is empty"),
            "{e}"
        );
        let e = with("[profiles.dev.set.web]\nreplicas = -1");
        assert!(e.contains("tether.toml:4:12: "), "{e}");
    }

    #[test]
    fn shared_resources_run_in_the_shared_namespace_and_bad_ones_name_file_line_and_column() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "a.yaml", "");
        let config = |profile: &str| {
            format!(
                "namespace = \"api\"\n[resources.a]\nmanifests = [\"a.yaml\"]\n\
                 [resources.b]\nmanifests = [\"a.yaml\"]\n[profiles.stage]\n{profile}"
            )
        };
        write(
            d,
            "tether.toml",
            &config("namespace = \"dev-{user}\"\nshared = [\"a\"]\nshared_namespace = \"stage\"\n"),
        );
        let p = load(&d.join(FILE_NAME)).unwrap();
        let stage = p.profiles["stage"].clone();
        assert!(stage.is_shared("a") && !stage.is_shared("b"));
        let run = p.in_profile(&stage, "dev-alice").unwrap();
        assert_eq!(run.resources["a"].namespace, "stage");
        assert_eq!(run.resources["b"].namespace, "dev-alice");

        write(
            d,
            "tether.toml",
            &config("namespace = \"stage\"\nshared = [\"a\"]\n"),
        );
        let p = load(&d.join(FILE_NAME)).unwrap();
        let fixed = p.profiles["stage"].clone();
        assert_eq!(fixed.shared_namespace(), "stage");
        assert_eq!(
            p.in_profile(&fixed, "stage").unwrap().resources["a"].namespace,
            "stage"
        );

        write(
            d,
            "tether.toml",
            &config("namespace = \"stage\"\nshared = [\"a\", \"pipeline\"]\n"),
        );
        let e = err(d);
        assert!(
            e.contains("tether.toml:8:16: profile `stage`: shared names unknown resource `pipeline` (known: a, b)"),
            "{e}"
        );
        write(
            d,
            "tether.toml",
            &config("namespace = \"dev-{user}\"\nshared = [\"a\"]\n"),
        );
        let e = err(d);
        assert!(
            e.contains("tether.toml:7:13: profile `stage`: namespace `dev-{user}` is one per user, so its shared resources need `shared_namespace = \"NAME\"` to run in"),
            "{e}"
        );
        write(
            d,
            "tether.toml",
            &config("namespace = \"dev-{user}\"\nshared = [\"a\"]\nshared_namespace = \"Stage\"\n"),
        );
        assert!(err(d).contains(
            "tether.toml:9:20: profile `stage`: shared_namespace `Stage` is not a namespace name"
        ));
    }

    #[test]
    fn include_without_config_points_at_the_include() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("empty")).unwrap();
        write(t.path(), "tether.toml", "include = [\"empty\"]\n");
        assert!(err(t.path()).contains("tether.toml:1:12: included folder has no tether.toml"));
    }
}
