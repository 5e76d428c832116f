//! A resource's own checks and a count scaled by hand, against the real cluster:
//! `ready_cmd` holds `up --ci` back until it passes (and says why meanwhile),
//! `status_cmd`'s output reaches `tether status`, `tether scale` changes the replicas at
//! once and a redeploy keeps them, until tether.toml changes; `down` forgets the count.

use std::{path::Path, time::Duration};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::{
    process::{Running, tether, text},
    support::{TestNamespace, cluster, eventually, free_port, hello_project, labelled_in},
};

/// The hello fixture with checks that run in its pod: `ready_cmd` fails twice (it counts
/// its runs in `/checks`), then passes; `status_cmd` reports the count.
fn project(dir: &Path, namespace: &str) {
    let mut config = hello_project(dir, "", namespace, free_port());
    config.push_str(
        "ready_cmd = [\"/bin/busybox\", \"sh\", \"-c\", \
         \"n=$(/bin/busybox cat /checks 2>/dev/null || echo 0); echo $((n+1)) > /checks; \
         [ $n -ge 2 ] || { echo \\\"$n checks so far\\\"; exit 1; }\"]\n\
         status_cmd = [\"/bin/busybox\", \"sh\", \"-c\", \
         \"echo pod $(/bin/busybox hostname); echo checks run: $(/bin/busybox cat /checks)\"]\n",
    );
    std::fs::write(dir.join("tether.toml"), config).unwrap();
}

async fn replicas(api: &Api<Deployment>) -> Option<i32> {
    api.get("hello").await.ok()?.spec?.replicas
}

#[test]
fn checks_hold_readiness_feed_the_status_and_a_scale_lasts_until_tether_toml_changes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "scale"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, &ns.name);

    // Pod readiness comes first; the check then fails twice, saying why, and passes.
    let out = tether(dir, &["up", "--ci", "--timeout", "180"]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("[hello] waiting: ready_cmd `/bin/busybox sh -c")
            && printed.contains("1 checks so far (exit code 1)"),
        "up says what the check printed while it fails:\n{printed}"
    );
    assert!(printed.contains("all resources ready"), "{printed}");

    // A scale without an `up` running goes to the cluster at once.
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns.name);
    let out = tether(dir, &["scale", "hello", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello: scaled Deployment hello from 1 to 3 replicas (kept by `tether up` until tether.toml changes)"
    );
    assert_eq!(rt.block_on(replicas(&deployments)), Some(3));
    let out = tether(dir, &["scale", "nosuch", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`nosuch` is not a resource of this project (resources: hello)"),
        "{}",
        text(&out)
    );

    // `up` deploys again at start and keeps the count; its status shows each replica and
    // the status command's output.
    let mut up = Running::start(dir, &["up", "--no-tui"]);
    up.wait_for(0, Duration::from_secs(180), "hello to be ready", |l| {
        l.contains("[hello] ready")
    });
    up.wait_for(0, Duration::from_secs(30), "the watcher", |l| {
        l.starts_with("watching ")
    });
    up.wait_for(0, Duration::from_secs(60), "the status command", |l| {
        l.starts_with("[hello] status: checks run:")
    });
    let status = rt.block_on(eventually(
        Duration::from_secs(60),
        "three ready replicas and the status panel in `tether status`",
        || async {
            let out = tether(dir, &["status"]);
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            (s.matches("\n  hello-").count() == 3
                && s.lines().filter(|l| l.ends_with(" ready")).count() >= 3
                && s.contains("hello status:\n  pod hello-"))
            .then_some(s)
        },
    ));
    assert!(status.contains("  checks run: "), "{status}");
    assert_eq!(rt.block_on(replicas(&deployments)), Some(3));

    // A change of tether.toml ends the count set by hand: the declared one is back.
    let mark = up.mark();
    let mut config = std::fs::read_to_string(dir.join("tether.toml")).unwrap();
    config.push_str("# edited\n");
    std::fs::write(dir.join("tether.toml"), config).unwrap();
    up.wait_for(
        mark,
        Duration::from_secs(60),
        "the count to be dropped",
        |l| l == "[hello] replica count set by hand dropped: tether.toml changed",
    );
    rt.block_on(eventually(
        Duration::from_secs(60),
        "the declared replica count",
        || async { (replicas(&deployments).await == Some(1)).then_some(()) },
    ));
    // A change's round ends with "[hello] ready: serving the change …".
    up.wait_for(mark, Duration::from_secs(60), "hello ready again", |l| {
        l.starts_with("[hello] ready")
    });
    assert!(up.interrupt(), "up stops on Ctrl-C");

    // Scaled again, then down: nothing labelled is left, and the count is forgotten.
    let out = tether(dir, &["scale", "hello", "+1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join(".tether/replicas.json").exists());
    let out = tether(dir, &["down"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dir.join(".tether/replicas.json").exists());
    assert_eq!(
        rt.block_on(labelled_in(&cluster.client, &ns.name)),
        Vec::<String>::new()
    );
}
