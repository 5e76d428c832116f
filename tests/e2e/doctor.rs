//! `tether doctor` on the dev cluster: every check passes in a project folder, and a
//! registry that stops answering fails its line with the fix. The stopped registry is
//! the test's own (`docker-registry` on a free loopback port), never the shared one.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use crate::{
    process::tether,
    support::{TestNamespace, cluster, eventually},
};

/// The checks, in the order doctor prints them.
const CHECKS: &[&str] = &[
    "kube context",
    "API server",
    "RBAC",
    "Docker API",
    "registry from the laptop",
    "registry from the cluster",
    "user namespaces",
];

/// A project folder whose one resource lives in `namespace` and whose images go to
/// `registry`.
fn project(dir: &Path, namespace: &str, registry: &str) {
    std::fs::write(
        dir.join("tether.toml"),
        format!(
            "namespace = \"{namespace}\"\nregistry = \"{registry}\"\n\n\
             [resources.hello]\nmanifests = [\"hello.yaml\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("hello.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  greeting: hi\n",
    )
    .unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line of `check`, and the fix line below it when there is one.
fn line(text: &str, check: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.get(4..)
                .is_some_and(|r| r.starts_with(&format!("  {check}: ")))
        })
        .unwrap_or_else(|| panic!("no line for {check} in:\n{text}"));
    match lines.get(at + 1) {
        Some(fix) if fix.starts_with("      fix: ") => format!("{}\n{fix}", lines[at]),
        _ => lines[at].to_owned(),
    }
}

#[test]
fn doctor_passes_every_check_in_a_project_on_the_dev_cluster() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(c) = rt.block_on(cluster()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&c.client, "doctor"));
    let dir = tempfile::Builder::new()
        .prefix("tether-doctor")
        .tempdir()
        .unwrap();
    let registry = std::env::var("TETHER_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    project(dir.path(), &ns.name, &registry);

    let out = tether(dir.path(), &["doctor"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for check in CHECKS {
        assert!(
            line(&text, check).starts_with(&format!("pass  {check}: ")),
            "{check} passes:\n{text}"
        );
    }
    assert!(
        line(&text, "kube context").contains("(looks local)"),
        "{text}"
    );
    assert!(
        line(&text, "API server").contains("Kubernetes v1."),
        "{text}"
    );
    assert!(
        line(&text, "RBAC").contains(&format!("allowed in namespace {}", ns.name)),
        "{text}"
    );
    assert!(
        line(&text, "registry from the laptop")
            .contains(&format!("{registry} (from tether.toml) answers")),
        "{text}"
    );
    assert!(
        line(&text, "registry from the cluster").contains(&format!(
            "a pod in namespace {} pulled {registry}/",
            ns.name
        )),
        "{text}"
    );
    // The order a person reads them in.
    let at: Vec<usize> = CHECKS
        .iter()
        .map(|c| text.find(&format!("  {c}: ")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");

    // The probe pod is gone once doctor exits.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(c.client.clone(), &ns.name);
    let left = rt
        .block_on(pods.list(&kube::api::ListParams::default()))
        .unwrap();
    assert!(
        left.items
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_some()),
        "probe pods left: {:?}",
        left.items
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    );

    let json = tether(dir.path(), &["doctor", "-o", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["passed"], true, "{value}");
    assert_eq!(
        value["checks"].as_array().map(Vec::len),
        Some(CHECKS.len()),
        "{value}"
    );
}

/// A `docker-registry` of the test's own, stopped when dropped.
struct OwnRegistry {
    child: Child,
    addr: String,
    _storage: tempfile::TempDir,
}

impl OwnRegistry {
    fn start() -> OwnRegistry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let storage = tempfile::Builder::new()
            .prefix("tether-doctor-registry")
            .tempdir()
            .unwrap();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {addr}\n  secret: tether-doctor-test\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            // Its access errors (a probe's HEAD of a tag not pushed yet) are expected.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (scripts/dev-cluster installs it)");
        let registry = OwnRegistry {
            child,
            addr,
            _storage: storage,
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let addr = registry.addr.clone();
        rt.block_on(eventually(
            Duration::from_secs(20),
            "the test's registry listening",
            || {
                let addr = addr.clone();
                async move { TcpStream::connect(&addr).ok().map(|_| ()) }
            },
        ));
        registry
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn doctor_fails_the_registry_line_with_a_fix_once_the_registry_stops() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(c) = rt.block_on(cluster()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&c.client, "doctor-reg"));
    let dir = tempfile::Builder::new()
        .prefix("tether-doctor")
        .tempdir()
        .unwrap();
    let mut registry = OwnRegistry::start();
    project(dir.path(), &ns.name, &registry.addr);

    let out = tether(dir.path(), &["doctor"]);
    let text = stdout(&out);
    assert!(
        line(&text, "registry from the laptop").starts_with(&format!(
            "pass  registry from the laptop: {} (from tether.toml) answers",
            registry.addr
        )),
        "{text}"
    );

    registry.stop();
    let out = tether(dir.path(), &["doctor"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed = line(&text, "registry from the laptop");
    assert!(
        failed.starts_with(&format!(
            "fail  registry from the laptop: {} does not answer /v2/",
            registry.addr
        )),
        "{text}"
    );
    assert!(
        failed.contains("\n      fix: start the registry"),
        "the fix is below the line:\n{text}"
    );
    assert!(
        line(&text, "registry from the cluster")
            .starts_with("warn  registry from the cluster: not tried"),
        "{text}"
    );
    // The rest of the machine is as fine as before.
    for check in ["kube context", "API server", "Docker API"] {
        assert!(line(&text, check).starts_with("pass  "), "{text}");
    }
}
