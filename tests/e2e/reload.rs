//! `tether.toml` edited while `tether up` runs, against the real cluster: a valid edit is
//! planned and applied (a new resource is deployed), an invalid one is refused in words
//! (file:line:col) while the running config keeps serving and keeps rebuilding.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::{
    process::{Running, tether},
    support::{TestNamespace, cluster, free_port, hello_project},
};

fn http_get(url: &str) -> Option<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        r.text().await.ok()
    })
}

#[test]
fn an_edited_tether_toml_is_reloaded_and_an_invalid_one_keeps_the_old_one_running() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "tether-it-reload"));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    let forward = format!("http://127.0.0.1:{port}/");
    let config = hello_project(dir, "", &ns.name, port);

    // Headless first: it exits once ready, after its tasks have ended, with every line
    // printed.
    let out = tether(dir, &["up", "--ci"]);
    assert!(out.status.success(), "tether up --ci failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[hello] ready"), "{stdout}");
    assert!(stdout.contains("all resources ready"), "{stdout}");

    let mut up = Running::start(dir, &["up", "--no-tui"]);
    up.wait_for(0, Duration::from_secs(180), "hello to be ready", |l| {
        l.contains("[hello] ready")
    });
    up.wait_for(0, Duration::from_secs(30), "the watcher", |l| {
        l.starts_with("watching ")
    });
    assert_eq!(http_get(&forward).as_deref(), Some("hello from tether\n"));

    // A valid edit: a new resource with a manifest of its own.
    std::fs::write(
        dir.join("extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  added: by-reload\n",
    )
    .unwrap();
    let mark = up.mark();
    let with_extra = format!("{config}\n[resources.extra]\nmanifests = [\"extra.yaml\"]\n");
    std::fs::write(dir.join("tether.toml"), &with_extra).unwrap();
    let line = up.wait_for(mark, Duration::from_secs(30), "the reload", |l| {
        l.starts_with("config: ")
    });
    assert!(
        line.starts_with("config: reloaded tether.toml (added extra"),
        "{line}"
    );
    up.wait_for(mark, Duration::from_secs(60), "extra to be ready", |l| {
        l.contains("[extra] ready")
    });
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns.name);
    let cm = rt
        .block_on(cms.get_opt("extra"))
        .unwrap()
        .expect("the new resource's ConfigMap was applied");
    assert_eq!(
        cm.data.unwrap_or_default().get("added").map(String::as_str),
        Some("by-reload")
    );
    assert!(
        !up.since(mark).iter().any(|l| l.contains("[hello] build:")),
        "a config edit that changes no image built one: {:?}",
        up.since(mark)
    );

    // An invalid edit: said in words, with where, and the running config stays.
    let mark = up.mark();
    let broken = format!("{with_extra}\n[resources.broken]\nmanifest = [\"x.yaml\"]\n");
    let bad_line = broken.lines().count();
    std::fs::write(dir.join("tether.toml"), &broken).unwrap();
    let line = up.wait_for(mark, Duration::from_secs(30), "the refusal", |l| {
        l.starts_with("config: ")
    });
    assert!(
        line.contains("the edited tether.toml is invalid, the running one stays")
            && line.contains(&format!(
                "tether.toml:{bad_line}:1: unknown key `manifest`; did you mean `manifests`?"
            )),
        "{line}"
    );
    assert_eq!(
        http_get(&forward).as_deref(),
        Some("hello from tether\n"),
        "the running deploy still serves"
    );
    // The old config still runs rounds: an edit to the page is built and served.
    let mark = up.mark();
    std::fs::write(dir.join("index.html"), "hello after a refused config\n").unwrap();
    up.wait_for(
        mark,
        Duration::from_secs(180),
        "the page edit to be served",
        |l| l.contains("[hello] ready: serving the change"),
    );
    assert_eq!(
        http_get(&forward).as_deref(),
        Some("hello after a refused config\n")
    );
    assert!(up.interrupt(), "tether up stops on Ctrl-C");

    std::fs::write(dir.join("tether.toml"), &with_extra).unwrap();
    let out = tether(dir, &["down"]);
    assert!(out.status.success(), "tether down failed");
}
