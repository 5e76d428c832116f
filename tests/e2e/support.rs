//! Helpers for tests against the real cluster, registry and engine started by
//! `scripts/dev-cluster up`.
//!
//! Without a cluster the tests say so and pass as skipped, unless `TETHER_REQUIRE_CLUSTER`
//! is set (as `scripts/test` and CI do), where a missing cluster is a failure.

pub mod laptop;

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Secret, Service},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use tether::cluster::Cluster;

/// The kubeconfig of the developer `name` (group `tether:developers`), minted by
/// `scripts/dev-cluster user` once per name for every test of the run: two mintings of
/// one name at once would write the same files, so every test mints through here.
pub fn developer(name: &str) -> PathBuf {
    static MINTED: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut minted = MINTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = minted.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev-cluster");
    let out = std::process::Command::new(script)
        .args(["user", name, "--group", "tether:developers"])
        .output()
        .expect("scripts/dev-cluster runs");
    assert!(
        out.status.success(),
        "dev-cluster user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().expect("the kubeconfig's path").trim());
    minted.push((name.to_owned(), path.clone()));
    path
}

/// `tether ARGS` in `dir` as the developer `name` ([`developer`]), run to completion.
pub fn as_user(name: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = crate::process::command(dir, args);
    c.env("KUBECONFIG", developer(name));
    crate::process::output(c)
}

/// The cluster, or `None` (with a message) when there is none and none is required.
pub async fn cluster() -> Option<Cluster> {
    // TETHER_LOG=debug shows what tether's code does inside a test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TETHER_LOG"))
        .with_test_writer()
        .try_init();
    let required = std::env::var_os("TETHER_REQUIRE_CLUSTER").is_some();
    match Cluster::connect(None).await {
        Ok(c) if c.client.apiserver_version().await.is_ok() => Some(c),
        Ok(c) if required => panic!("cluster of context {} does not answer", c.context),
        Err(e) if required => panic!("no cluster: {e}"),
        _ => {
            eprintln!(
                "SKIPPED: no cluster answers (start one with `scripts/dev-cluster up` and `eval \"$(scripts/dev-cluster env)\"`)"
            );
            None
        }
    }
}

/// A namespace for one test, deleted when the guard drops, also when the test fails.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        let name = format!("{prefix}-{}", unique());
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}
        }))
        .unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
        TestNamespace { name }
    }
}

/// Runs `f` with the admin's client to its end, from a `Drop`: drop cannot await, so a
/// thread with its own runtime and its own client does it (a client made on the test's
/// runtime would need that runtime to run).
fn as_admin_from_drop<F, Fut>(f: F)
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            if let Ok(client) = Client::try_default().await {
                f(client).await;
            }
        });
    })
    .join();
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        as_admin_from_drop(|client| async move {
            let api: Api<Namespace> = Api::all(client);
            let _ = api.delete(&name, &DeleteParams::background()).await;
        });
    }
}

/// Held by every test that writes the policy: it is one ConfigMap for the whole cluster
/// (tests/e2e/policy.rs, tests/e2e/example_pipeline.rs).
pub static POLICY: Mutex<()> = Mutex::new(());

/// The policy's text in the cluster, read with the admin's client.
pub async fn stored_policy(client: &Client) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "tether");
    api.get_opt("tether-policy")
        .await
        .unwrap()
        .and_then(|m| m.data)
        .and_then(|mut d| d.remove("policy.toml"))
}

/// Puts back the policy found when the test started, also when it fails.
pub struct RestorePolicy {
    pub before: Option<String>,
}

impl Drop for RestorePolicy {
    fn drop(&mut self) {
        let before = self.before.clone();
        as_admin_from_drop(|client| async move {
            let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "tether");
            match before {
                Some(text) => {
                    let map = serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "tether-policy", "namespace": "tether"},
                        "data": {"policy.toml": text},
                    });
                    let apply = PatchParams::apply("tether-policy").force();
                    let _ = maps
                        .patch("tether-policy", &apply, &Patch::Apply(&map))
                        .await;
                }
                None => {
                    let _ = maps.delete("tether-policy", &DeleteParams::default()).await;
                    // The namespace holds no policy any more: drop the label.
                    let namespaces: Api<Namespace> = Api::all(client);
                    let unlabel = serde_json::json!({"metadata": {"labels": {"tether.dev/holds-policy": null}}});
                    let _ = namespaces
                        .patch("tether", &PatchParams::default(), &Patch::Merge(&unlabel))
                        .await;
                }
            }
        });
    }
}

/// Deployments, Services, Secrets and ConfigMaps in `namespace` that carry tether's label.
pub async fn labelled_in(client: &Client, namespace: &str) -> Vec<String> {
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=tether");
    let mut found = Vec::new();
    macro_rules! scan {
        ($kind:ty) => {
            let api: Api<$kind> = Api::namespaced(client.clone(), namespace);
            for o in api.list(&lp).await.unwrap().items {
                let name = o.metadata.name.unwrap_or_default();
                found.push(format!("{} {name}", stringify!($kind)));
            }
        };
    }
    scan!(Deployment);
    scan!(Service);
    scan!(Secret);
    scan!(ConfigMap);
    found
}

/// A short random suffix for names.
pub fn unique() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}",
        (nanos ^ (std::process::id() as u128) << 20) & 0xff_ffff
    )
}

/// A port on loopback that nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The hello fixture (a static busybox httpd serving one page) as a project in `dir`:
/// image `hello`, resource `hello` in `namespace`, forwarded from `port`. Returns the
/// tether.toml it wrote. `head` goes first in the file (top-level keys such as
/// `registry`), `.dockerignore` keeps the config and `extra.yaml` out of the image.
pub fn hello_project(dir: &Path, head: &str, namespace: &str, port: u16) -> String {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello");
    for f in ["Dockerfile", "index.html", "hello.yaml"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("busybox-static is installed by scripts/dev-cluster");
    std::fs::write(dir.join(".dockerignore"), "tether.toml\nextra.yaml\n").unwrap();
    let config = format!(
        "{head}namespace = \"{namespace}\"\n\
         \n\
         [images.hello]\n\
         context = \".\"\n\
         \n\
         [resources.hello]\n\
         manifests = [\"hello.yaml\"]\n\
         port_forwards = [\"{port}:8080\"]\n"
    );
    std::fs::write(dir.join("tether.toml"), &config).unwrap();
    config
}

/// Retries `f` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the shop answers through the gateway at `base`: a sign-up that reaches the
/// users service (any answer but 502). Services that were just recreated take a moment
/// to be reachable by name everywhere.
pub fn wait_for_shop(base: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status = rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{base}/api/v1/users/signup"))
                .json(&serde_json::json!({"username": format!("probe-{}", unique()), "password": "probe-password"}))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            Some(r.status().as_u16())
        });
        if matches!(status, Some(s) if s != 502) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shop never answered through {base}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether `tool` runs here (`tool --version`, or `version_flag`); without it the test
/// skips, unless a cluster is required (`scripts/test` installs the tools), when it
/// fails with `install`, the command that brings it.
pub fn have(tool: &str, version_flag: &str, install: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg(version_flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("TETHER_REQUIRE_CLUSTER").is_none(),
            "{tool} is missing: {install}"
        );
        eprintln!("SKIPPED: {tool} is missing ({install})");
    }
    found
}

/// Waits until the namespace `name` is gone (its deletion finalised).
pub async fn namespace_gone(client: &Client, name: &str, timeout: Duration) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(
        timeout,
        &format!("namespace {name} to be deleted"),
        || async { namespaces.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await
}
