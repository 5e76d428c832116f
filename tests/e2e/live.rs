//! Live update on the shop's users service, against the real cluster: an edit under a
//! running `tether up` reaches the running pod without an image build or a rollout, the
//! synced code survives its process being killed, a `fall_back_on` file builds, and a pod
//! that starts after a sync gets the synced code.

use std::{collections::BTreeSet, path::Path, time::Duration};

use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use kube::{Api, Client, api::ListParams};

use crate::{
    process::{Running, tether},
    support::cluster,
    up::{DownOnPanic, SHOP},
};

const USERS_FORWARD: &str = "http://127.0.0.1:8001";
const USERS_PODS: &str = "app.kubernetes.io/name=users";

fn healthz() -> Option<String> {
    let rt = tokio::runtime::Runtime::new().ok()?;
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{USERS_FORWARD}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        r.text().await.ok()
    })
}

/// Asks until healthz says `body` (the forward follows pods as they restart).
fn wait_for_body(body: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    let mut last = None;
    while std::time::Instant::now() < deadline {
        last = healthz();
        if last.as_deref() == Some(body) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("healthz never said {body} within {within:?}; last: {last:?}");
}

/// The names of the users pods and ReplicaSets: what a rollout would change.
async fn workload_names(client: &Client) -> (BTreeSet<String>, BTreeSet<String>) {
    let lp = ListParams::default().labels(USERS_PODS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "api");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "api");
    fn names<K>(items: Vec<kube::api::PartialObjectMeta<K>>) -> BTreeSet<String> {
        items.into_iter().filter_map(|o| o.metadata.name).collect()
    }
    (
        names(pods.list_metadata(&lp).await.unwrap().items),
        names(sets.list_metadata(&lp).await.unwrap().items),
    )
}

/// `GET /healthz` of one pod, through a port-forward of its own.
async fn healthz_of(client: &Client, pod: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pods: Api<Pod> = Api::namespaced(client.clone(), "api");
    let mut forward = pods.portforward(pod, &[8080]).await.unwrap();
    let mut stream = forward.take_stream(8080).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: users\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The restarts of the users container.
async fn restarts(client: &Client) -> i32 {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "api");
    pods.list(&ListParams::default().labels(USERS_PODS))
        .await
        .unwrap()
        .items
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum()
}

/// Kills the users app itself (not its supervisor) with SIGKILL, as a crash would: the
/// node's process table holds every container's processes.
fn kill_the_app() {
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if argv != b"/users\0" {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_owned();
        let parent = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&parent).contains("agent\0supervise") {
            continue;
        }
        // SAFETY: kill(2) on a pid just read; a race only makes it miss.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
        killed += 1;
    }
    assert_eq!(killed, 1, "exactly one users app under a supervisor");
}

fn edit(file: &Path, from: &str, to: &str) {
    let source = std::fs::read_to_string(file).unwrap();
    assert!(
        source.contains(from),
        "{} changed; update this test",
        file.display()
    );
    std::fs::write(file, source.replacen(from, to, 1)).unwrap();
}

#[test]
fn live_update_syncs_edits_into_running_and_new_pods_survives_a_killed_app_and_falls_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let _turn = SHOP.lock().unwrap_or_else(|e| e.into_inner());
    let repo = crate::process::repo_copy();
    let users = repo.path().join("examples/shop/users");
    let _down = DownOnPanic::new(&users, None);

    let mut up = Running::start(&users, &["up", "--no-tui"]);
    up.wait_for(0, Duration::from_secs(600), "users to be ready", |l| {
        l.contains("[users] ready")
    });
    up.wait_for(0, Duration::from_secs(60), "the watcher", |l| {
        l.starts_with("watching ")
    });
    wait_for_body(r#"{"status":"ok"}"#, Duration::from_secs(30));
    let before = rt.block_on(workload_names(&cluster.client));

    // An edit of the handler: synced, not built.
    let mark = up.mark();
    edit(
        &users.join("src/routes.rs"),
        "Json(Health::ok())",
        r#"Json(Health { status: "synced".to_owned() })"#,
    );
    let change = up.wait_for(mark, Duration::from_secs(30), "the plan", |l| {
        l.starts_with("change:")
    });
    assert!(change.contains("live update users"), "{change}");
    let synced = up.wait_for(mark, Duration::from_secs(300), "the sync", |l| {
        l.contains("[users] live update")
    });
    assert!(
        synced.contains("synced 1 file (src/routes.rs → /users via host build) and restarted in"),
        "{synced}"
    );
    up.wait_for(mark, Duration::from_secs(30), "the update line", |l| {
        l.contains("[users] ready: serving the change")
    });
    wait_for_body(r#"{"status":"synced"}"#, Duration::from_secs(10));
    assert!(
        !up.since(mark).iter().any(|l| l.contains("build: pushed")),
        "no image was built: {:?}",
        up.since(mark)
    );
    assert_eq!(
        rt.block_on(workload_names(&cluster.client)),
        before,
        "the same pods and ReplicaSets: no rollout"
    );
    let status = tether(&users, &["status", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let last_change = status["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "users"))
        .map(|r| r["last_change"].to_string())
        .unwrap_or_default();
    assert!(last_change.contains("synced 1 file"), "{status}");

    // The app dies: its container restarts, and the supervisor starts it on the synced code.
    let restarts_before = rt.block_on(restarts(&cluster.client));
    kill_the_app();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while rt.block_on(restarts(&cluster.client)) == restarts_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never restarted"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_for_body(r#"{"status":"synced"}"#, Duration::from_secs(60));
    assert_eq!(
        rt.block_on(workload_names(&cluster.client)),
        before,
        "a restarted container, not a new pod"
    );

    // A fall_back_on file: a full build and rollout, with the reason.
    let mark = up.mark();
    let manifest = users.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    // Unique per run, so the registry cannot already hold the image and it is built.
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    std::fs::write(
        &manifest,
        format!("{text}\n# a dependency change {unique}\n"),
    )
    .unwrap();
    let change = up.wait_for(mark, Duration::from_secs(30), "the plan", |l| {
        l.starts_with("change:")
    });
    assert!(
        change.contains("full rebuild of users: Cargo.toml matches fall_back_on `Cargo.toml`"),
        "{change}"
    );
    up.wait_for(mark, Duration::from_secs(600), "the rebuild", |l| {
        l.contains("[users] build: pushed")
    });
    up.wait_for(mark, Duration::from_secs(300), "the rollout", |l| {
        l.contains("[users] ready: serving the change")
    });
    wait_for_body(r#"{"status":"synced"}"#, Duration::from_secs(60));
    let after = rt.block_on(workload_names(&cluster.client));
    assert_ne!(after.1, before.1, "a new ReplicaSet: the image was rebuilt");

    // Synced again, then a pod that starts later (a scale-up): it gets the synced binary
    // as soon as it runs, and says so, instead of serving the image's code.
    let mark = up.mark();
    edit(
        &users.join("src/routes.rs"),
        r#"status: "synced""#,
        r#"status: "synced-again""#,
    );
    up.wait_for(mark, Duration::from_secs(300), "the second sync", |l| {
        l.contains("[users] live update: synced 1 file (src/routes.rs")
    });
    let mark = up.mark();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(cluster.client.clone(), "api");
    rt.block_on(deployments.patch(
        "users",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({ "spec": { "replicas": 2 } })),
    ))
    .unwrap();
    let replayed = up.wait_for(mark, Duration::from_secs(120), "the new pod's sync", |l| {
        l.contains("[users] live update: synced 1 file (/users)")
    });
    assert!(replayed.contains("restarted in"), "{replayed}");
    let (pods_now, _) = rt.block_on(workload_names(&cluster.client));
    let new_pod = pods_now
        .difference(&after.0)
        .next()
        .expect("the scale-up made a pod")
        .clone();
    let answer = rt.block_on(healthz_of(&cluster.client, &new_pod));
    assert!(
        answer.ends_with(r#"{"status":"synced-again"}"#),
        "the new pod {new_pod} serves the synced code: {answer}"
    );

    assert!(up.interrupt(), "tether up stops on Ctrl-C");
    let out = tether(&users, &["down"]);
    assert!(out.status.success(), "tether down failed");
}
