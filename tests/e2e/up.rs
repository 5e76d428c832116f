//! `tether up` / `down` on the bundled shop, against the real cluster, as a developer runs
//! them: in a service folder, editing code while `up` runs, then cleaning up.
//!
//! These tests share the shop's namespace and forwarded ports, so they take turns.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace},
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};

use crate::{
    process::{Running, command, repo_copy, tether},
    support::{cluster, labelled_in, laptop::Laptop},
};

/// Taken by every test that deploys the shop or binds its forwarded ports.
pub static SHOP: Mutex<()> = Mutex::new(());

/// Cleans up after a shop test that panics: `tether uninstall -n api` (an intercept a
/// killed `tether intercept` left) and `tether down` in the test's shop folder, on the
/// laptop when the test's `tether up` ran there. A test that passes runs and checks
/// `down` itself, so nothing runs then.
///
/// Declare it after taking [`SHOP`] and before starting `tether up`: locals drop in
/// reverse order, so `up` is killed first and the next test waits for the cleanup.
pub struct DownOnPanic {
    /// The folder `tether up` ran in: `down` reads what it deployed from there.
    dir: PathBuf,
    /// Where `up` ran: the laptop namespace, or the node when `None`.
    laptop: Option<Laptop>,
}

impl DownOnPanic {
    pub fn new(dir: &Path, laptop: Option<Laptop>) -> DownOnPanic {
        DownOnPanic {
            dir: dir.to_owned(),
            laptop,
        }
    }
}

impl Drop for DownOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for args in [&["uninstall", "-n", "api"][..], &["down"]] {
            let mut c = match &self.laptop {
                Some(laptop) => laptop.tether(&self.dir, args),
                None => command(&self.dir, args),
            };
            // No panic here: a second one while unwinding would abort the test binary.
            match c.output() {
                Ok(out) => eprintln!(
                    "cleanup after the failure: tether {} ({})\n{}{}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("cleanup after the failure: tether {args:?}: {e}"),
            }
        }
    }
}

const USERS_FORWARD: &str = "http://127.0.0.1:8001";
const GATEWAY_FORWARD: &str = "http://127.0.0.1:8000";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn http_get(url: &str) -> Option<(u16, String)> {
    let rt = runtime();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    })
}

/// Objects in the shop's namespace (and namespaces) that carry tether's label.
async fn labelled_objects(client: &Client) -> Vec<String> {
    let mut found = labelled_in(client, "api").await;
    // The shop's own namespace: other namespaces of tether's (the connect agent's
    // `tether`) are not `up`'s to remove.
    let api = Api::<Namespace>::all(client.clone())
        .get_opt("api")
        .await
        .unwrap();
    if api.is_some_and(|n| {
        n.metadata.labels.is_some_and(|l| {
            l.get("app.kubernetes.io/managed-by")
                .is_some_and(|v| v == "tether")
        })
    }) {
        found.push("Namespace api".to_owned());
    }
    found
}

#[test]
fn users_up_serves_edits_and_down_removes_only_what_it_made() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let _turn = SHOP.lock().unwrap_or_else(|e| e.into_inner());
    let repo = repo_copy();
    let users = repo.path().join("examples/shop/users");
    let _down = DownOnPanic::new(&users, None);

    // Headless: exits 0 once ready.
    let out = tether(&users, &["up", "--ci"]);
    assert!(out.status.success(), "tether up --ci failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all resources ready"));

    // A ConfigMap tether did not make, in the same namespace.
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "api");
    let foreign: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "not-tethers"}, "data": {"k": "v"}}),
    )
    .unwrap();
    let _ = rt.block_on(cms.create(&PostParams::default(), &foreign));

    // Interactive: the forward answers, and an edit is served without any other action.
    let mut up = Running::start(&users, &["up", "--no-tui"]);
    up.wait_for(0, Duration::from_secs(120), "users to be ready", |l| {
        l.contains("[users] ready")
    });
    up.wait_for(0, Duration::from_secs(60), "the watcher", |l| {
        l.starts_with("watching ")
    });
    let (status, body) =
        http_get(&format!("{USERS_FORWARD}/healthz")).expect("the forward answers");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    let lib = users.join("src/routes.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let original = "Json(Health::ok())";
    assert!(
        source.contains(original),
        "the users healthz handler changed; update this test"
    );
    let mark = up.mark();
    std::fs::write(
        &lib,
        source.replace(original, r#"Json(Health { status: "edited".to_owned() })"#),
    )
    .unwrap();
    up.wait_for(
        mark,
        Duration::from_secs(600),
        "the edit to be served",
        |l| l.contains("[users] ready: serving the change"),
    );
    let (status, body) =
        http_get(&format!("{USERS_FORWARD}/healthz")).expect("the same forward answers");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"edited"}"#));

    // A file that is not an input of the image: reported, and nothing builds.
    let mark = up.mark();
    std::fs::write(users.join("NOTES.md"), "not part of the image\n").unwrap();
    let line = up.wait_for(mark, Duration::from_secs(30), "the change report", |l| {
        l.starts_with("change:")
    });
    assert!(line.contains("nothing to build or deploy"), "{line}");
    assert!(line.contains("NOTES.md"), "{line}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !up.since(mark).iter().any(|l| l.contains("build:")),
        "no build after a non-input change: {:?}",
        up.since(mark)
    );
    assert!(up.interrupt(), "tether up stops on Ctrl-C");

    // Down: nothing of tether's stays; what tether did not make does.
    let out = tether(&users, &["down"]);
    assert!(out.status.success(), "tether down failed");
    assert_eq!(
        rt.block_on(labelled_objects(&cluster.client)),
        Vec::<String>::new()
    );
    assert!(
        rt.block_on(cms.get_opt("not-tethers")).unwrap().is_some(),
        "a foreign object was deleted"
    );
    let _ = rt.block_on(cms.delete("not-tethers", &Default::default()));
}

#[test]
fn the_whole_shop_comes_up_and_the_workshop_flow_passes_through_the_gateway() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let _turn = SHOP.lock().unwrap_or_else(|e| e.into_inner());
    let repo = repo_copy();
    let shop = repo.path().join("examples/shop");
    let _down = DownOnPanic::new(&shop, None);

    let out = tether(&shop, &["up", "--ci"]);
    assert!(out.status.success(), "tether up --ci failed for the shop");
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "api");
    let names: Vec<String> = rt
        .block_on(deployments.list(&ListParams::default()))
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    for svc in ["users", "products", "orders", "payments", "gateway"] {
        assert!(
            names.iter().any(|n| n == svc),
            "deployment {svc} missing: {names:?}"
        );
    }

    let mut up = Running::start(&shop, &["up", "--no-tui"]);
    up.wait_for(0, Duration::from_secs(120), "the gateway's forward", |l| {
        l.contains("forward http://localhost:8000 -> ") && l.contains("healthy")
    });
    crate::support::wait_for_shop(GATEWAY_FORWARD);
    let walkthrough = shop.join("walkthrough.sh");
    let out = std::process::Command::new("bash")
        .arg(&walkthrough)
        .arg(GATEWAY_FORWARD)
        .output()
        .expect("the walkthrough runs");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the workshop walkthrough failed");
    assert!(text.contains(r#""status":"paid""#), "{text}");
    assert!(up.interrupt());

    let out = tether(&shop, &["down"]);
    assert!(out.status.success());
    assert_eq!(
        rt.block_on(labelled_objects(&cluster.client)),
        Vec::<String>::new()
    );
}

#[test]
fn a_malformed_config_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tether.toml"),
        "namespace = \"api\"\n[resources.web]\nmanifest = [\"k8s.yaml\"]\n",
    )
    .unwrap();
    let out = tether(dir.path(), &["up", "--ci"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tether.toml:3:1: unknown key `manifest`; did you mean `manifests`?"),
        "{err}"
    );
}

#[test]
fn a_context_that_does_not_look_local_is_refused_with_the_fix() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    // The same cluster under a production-looking name, reached at the node's address
    // rather than loopback.
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG is set with the cluster");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client.clone());
    let node = rt
        .block_on(nodes.list(&ListParams::default()))
        .unwrap()
        .items
        .remove(0);
    let node_ip = node
        .status
        .and_then(|s| s.addresses)
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .expect("the node has an InternalIP")
        .address;
    let server = cluster.server.trim_end_matches('/');
    let remote = format!("https://{node_ip}:{}", server.rsplit(':').next().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("kubeconfig");
    std::fs::write(
        &renamed,
        text.replace(&cluster.context, "prod-eu")
            .replace(server, &remote),
    )
    .unwrap();
    let repo = repo_copy();
    let users = repo.path().join("examples/shop/users");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["up", "--ci"])
        .current_dir(&users)
        .env("KUBECONFIG", &renamed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to change the cluster of kube context `prod-eu`"),
        "{err}"
    );
    assert!(err.contains(r#"allow_contexts = ["prod-eu"]"#), "{err}");
}
