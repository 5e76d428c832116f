//! The streaming example (`examples/pubsub`) on a real Kafka broker built here: `up --ci`
//! waits until deliveries flow (the medicine resource's `ready_cmd`), `tether scale`
//! raises the order rate, the consumer group's lag is shown (`status_cmd`), `tether logs
//! medicine` interleaves both workers, tagged; a worker killed mid-stream loses no order
//! (at least once: every order produced is delivered, duplicates allowed and counted);
//! the laptop reads both topics with kcat through `tether run`; `down` leaves nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    api::{AttachParams, DeleteParams, ListParams},
};
use tokio::io::AsyncReadExt;

use crate::{
    connect::{self, TURN},
    process::{Running, repo_copy, tether, text},
    support::{cluster, eventually, have, laptop::Laptop, namespace_gone},
};

const NAMESPACE: &str = "pubsub";
const BOOTSTRAP: &str = "kafka-0.kafka.pubsub:9092";

/// `tether down --delete-namespaces` when the test ends, passed or failed.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = tether(self.0, &["down", "--delete-namespaces"]);
    }
}

/// The ready pods of `app`, by name.
async fn ready_pods(client: &Client, app: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/name={app}"));
    let Ok(list) = pods.list(&lp).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .map(|p| p.name_any())
        .collect()
}

/// `medicine ARGS` run in a ready worker, as `kubectl exec` would: its stdout.
async fn in_worker(client: &Client, args: &[&str]) -> Option<String> {
    let pod = ready_pods(client, "medicine").await.into_iter().next()?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let argv: Vec<&str> = std::iter::once("medicine")
        .chain(args.iter().copied())
        .collect();
    let params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(false);
    let mut attached = pods.exec(&pod, argv, &params).await.ok()?;
    let mut out = String::new();
    attached.stdout()?.read_to_string(&mut out).await.ok()?;
    let _ = attached.join().await;
    Some(out)
}

/// Deliveries published so far: `medicine flowing` prints "N of M deliveries so far".
async fn deliveries(client: &Client) -> Option<i64> {
    let out = in_worker(client, &["flowing", "--min", "999999999"]).await?;
    out.split_whitespace().next()?.parse().ok()
}

/// Deliveries per second over `window`.
fn rate(rt: &tokio::runtime::Runtime, client: &Client, window: Duration) -> f64 {
    let count = || {
        rt.block_on(eventually(
            Duration::from_secs(30),
            "the delivery count",
            || deliveries(client),
        ))
    };
    let (start, t) = (count(), Instant::now());
    std::thread::sleep(window);
    let end = count();
    (end - start) as f64 / t.elapsed().as_secs_f64()
}

/// The JSON payloads of a whole topic, read from the laptop by kcat through `tether run`.
fn read_topic(laptop: &Laptop, state: &Path, topic: &str) -> Vec<serde_json::Value> {
    let out = connect::run(connect::tether_cmd(
        laptop,
        state,
        &[
            "run", "-n", NAMESPACE, "--", "timeout", "120", "kcat", "-b", BOOTSTRAP, "-t", topic,
            "-C", "-e", "-q", "-f", "%s\\n",
        ],
    ));
    assert!(out.status.success(), "kcat reads {topic}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{topic}: {l:?}: {e}")))
        .collect()
}

#[test]
fn orders_flow_scale_up_survive_a_killed_worker_and_reach_the_laptop() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    if !have("kcat", "-V", "apt-get install kcat") {
        return;
    }
    let client = cluster.client.clone();
    let repo = repo_copy();
    let dir = repo.path().join("examples/pubsub");
    let down = Down(&dir);

    // One command brings broker, topics, a patient and two workers, and returns once
    // deliveries flow, not merely once the pods are ready.
    let out = tether(&dir, &["up", "--ci", "--timeout", "900"]);
    let printed = text(&out);
    assert!(out.status.success(), "tether up --ci in examples/pubsub");
    assert!(printed.contains("all resources ready"), "{printed}");
    let flowing = rt.block_on(deliveries(&client)).expect("a worker answers");
    assert!(flowing >= 1, "deliveries flow once up --ci returns");

    let mut up = Running::start(&dir, &["up", "--no-tui"]);
    up.wait_for(
        0,
        Duration::from_secs(300),
        "the workers to be ready",
        |l| l == "[medicine] ready",
    );
    up.wait_for(0, Duration::from_secs(30), "the watcher", |l| {
        l.starts_with("watching ")
    });

    // More patients, more deliveries: scaled live, and said so.
    let before = rate(&rt, &client, Duration::from_secs(20));
    let out = tether(&dir, &["scale", "patient", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "patient: scaled Deployment patient from 1 to 3 replicas (kept by `tether up` until tether.toml changes)"
    );
    rt.block_on(eventually(
        Duration::from_secs(180),
        "three ready patients",
        || async { (ready_pods(&client, "patient").await.len() == 3).then_some(()) },
    ));
    let after = rate(&rt, &client, Duration::from_secs(20));
    eprintln!("deliveries/s: {before:.1} with one patient, {after:.1} with three");
    assert!(
        after > before * 1.8,
        "three patients deliver more: {before:.1}/s before, {after:.1}/s after"
    );

    // The resource list has each replica; the lag is the medicine resource's panel.
    let status = rt.block_on(eventually(
        Duration::from_secs(60),
        "each patient replica and the lag panel in `tether status`",
        || async {
            let out = tether(&dir, &["status"]);
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            (s.matches("\n  patient-").count() == 3
                && s.contains("medicine status:")
                && s.contains("total lag"))
            .then_some(s)
        },
    ));
    assert!(
        status.contains("partition"),
        "the lag per partition:\n{status}"
    );

    // Both workers in one stream, each line tagged with its pod.
    let workers = rt.block_on(ready_pods(&client, "medicine"));
    assert_eq!(workers.len(), 2, "{workers:?}");
    let logs = tether(&dir, &["logs", "medicine"]);
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    let mut tags = BTreeSet::new();
    for line in logs.lines().filter(|l| l.contains(" INFO delivered ")) {
        let tag = line
            .strip_prefix("[medicine] ")
            .and_then(|l| l.split(" | ").next())
            .unwrap_or_else(|| panic!("a tagged line: {line}"));
        tags.insert(tag.to_owned());
    }
    for w in &workers {
        let tag = w.rsplit('-').next().unwrap();
        assert!(
            tags.contains(tag),
            "{w}'s lines are in `tether logs medicine`"
        );
    }
    let one = workers[0].rsplit('-').next().unwrap();
    let only = tether(&dir, &["logs", "medicine", "--pod", one]);
    let only = String::from_utf8_lossy(&only.stdout).into_owned();
    assert!(
        !only.is_empty()
            && only
                .lines()
                .all(|l| l.starts_with(&format!("[medicine] {one} | "))),
        "--pod keeps one worker's lines"
    );

    // A worker killed mid-stream: its partitions move to the other, and no order is lost.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    rt.block_on(pods.delete(&workers[0], &DeleteParams::default().grace_period(0)))
        .expect("the worker is killed");
    std::thread::sleep(Duration::from_secs(10));
    let out = tether(&dir, &["scale", "patient", "0"]);
    assert!(out.status.success(), "{}", text(&out));
    rt.block_on(eventually(
        Duration::from_secs(300),
        "the workers to catch up (total lag 0, no patient left)",
        || async {
            let patients = ready_pods(&client, "patient").await;
            let lag = in_worker(&client, &["lag"]).await?;
            (patients.is_empty() && lag.contains("total lag 0")).then_some(())
        },
    ));

    // From the laptop, which reaches only the API server: both topics through kcat, by
    // the broker's advertised name.
    if let Some(laptop) = Laptop::from_env() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let state = tempfile::tempdir().unwrap();
        let orders = read_topic(&laptop, state.path(), "tabs.orders");
        let delivered = read_topic(&laptop, state.path(), "tabs.deliveries");
        assert!(delivered.len() >= 100, "{} deliveries", delivered.len());
        let ordered: BTreeSet<String> = orders
            .iter()
            .map(|o| o["id"].as_str().expect("an order id").to_owned())
            .collect();
        let mut times: BTreeMap<String, usize> = BTreeMap::new();
        for d in &delivered {
            *times
                .entry(d["order"].as_str().expect("a delivered order").to_owned())
                .or_default() += 1;
        }
        let lost: Vec<&String> = ordered
            .iter()
            .filter(|id| !times.contains_key(*id))
            .collect();
        let twice = times.values().filter(|n| **n > 1).count();
        eprintln!(
            "{} orders, {} deliveries, {} orders delivered more than once",
            ordered.len(),
            delivered.len(),
            twice
        );
        assert!(lost.is_empty(), "orders never delivered: {lost:?}");
        assert!(
            times.keys().all(|id| ordered.contains(id)),
            "every delivery is of an order produced"
        );
    }

    // Down: the namespace and everything in it go.
    assert!(up.interrupt(), "up stops on Ctrl-C");
    drop(down);
    rt.block_on(namespace_gone(&client, NAMESPACE, Duration::from_secs(180)));
    assert!(!dir.join(".tether/replicas.json").exists());
}
