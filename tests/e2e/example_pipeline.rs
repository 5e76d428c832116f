//! `examples/pipeline` played as its README tells it, each step as the user it belongs
//! to: the admin (the default kubeconfig) applies the example's policy; `olivia`, the
//! pipeline's owner, publishes its stage instance from the owner's folder; `alice` and
//! `bob` bring the dashboard up in stage from their checkouts and share that instance
//! (one Deployment per component, both recorded as consumers); `john` gets production
//! with its replicas and memory; the instance goes with its last consumer; a changed
//! production parameter is planned as exactly one object and re-applies only it; `carol`
//! is refused, the rule named, and nothing is made for her.
//!
//! Everyone works on a copy of the example of their own, in which the profiles and the
//! namespaces carry a suffix of the run's own, so a run never meets a run before it or
//! another test's profiles. The policy is one ConfigMap for the whole cluster: the test
//! holds the lock every writer of it holds, and the policy found at the start is put back.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{Api, Client, api::ListParams};
use serde_json::{Value, json};

use crate::{
    process::{command, output, text},
    support::{
        POLICY, RestorePolicy, TestNamespace, as_user, cluster, eventually, labelled_in,
        stored_policy, unique,
    },
};

/// The example in the repository.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pipeline")
}

/// Copies the folder `from` into `to`, modes kept (the CGI script stays executable),
/// leaving out the `.tether` state of a run of the example in place.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".tether" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Replaces every `from` in the file `path` by `to`; the example must say `from`, so
/// an edit of the example that this test no longer follows fails here, by name.
fn rewrite(path: &Path, pairs: &[(&str, String)]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in pairs {
        assert!(
            text.contains(from),
            "{} no longer says {from}",
            path.display()
        );
        text = text.replace(from, to);
    }
    std::fs::write(path, text).unwrap();
}

/// One person's copy of the example in `dir`, its profiles `stage-SUFFIX` and
/// `production-SUFFIX` in namespaces `dev-{user}-SUFFIX`, `stage-SUFFIX` (the shared
/// instance) and `pipeline-SUFFIX`, and the policy about those profiles.
fn checkout(dir: &Path, s: &str) -> PathBuf {
    copy_tree(&example(), dir);
    let profiles = [
        ("[profiles.stage", format!("[profiles.stage-{s}")),
        ("[profiles.production", format!("[profiles.production-{s}")),
        (
            "default_profile = \"stage\"",
            format!("default_profile = \"stage-{s}\""),
        ),
        (
            "namespace = \"dev-{user}\"",
            format!("namespace = \"dev-{{user}}-{s}\""),
        ),
        (
            "shared_namespace = \"stage\"",
            format!("shared_namespace = \"stage-{s}\""),
        ),
        (
            "namespace = \"pipeline\"",
            format!("namespace = \"pipeline-{s}\""),
        ),
    ];
    rewrite(&dir.join("pipeline/tether.toml"), &profiles);
    let mut consumer = profiles.to_vec();
    consumer.push((
        "http://stats.stage:8080/",
        format!("http://stats.stage-{s}:8080/"),
    ));
    rewrite(&dir.join("dashboard/tether.toml"), &consumer);
    rewrite(
        &dir.join("policy.toml"),
        &[
            (
                "profiles = [\"stage\"]",
                format!("profiles = [\"stage-{s}\"]"),
            ),
            (
                "profiles = [\"production\"]",
                format!("profiles = [\"production-{s}\"]"),
            ),
        ],
    );
    dir.to_path_buf()
}

/// The Deployments tether labels in `ns` (not being deleted), with their UIDs.
async fn deployments(client: &Client, ns: &str) -> Vec<(String, String)> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=tether");
    let mut found: Vec<_> = api
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|d| d.metadata.deletion_timestamp.is_none())
        .map(|d| {
            (
                d.metadata.name.unwrap_or_default(),
                d.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    found
}

/// The consumers of shared instance `resource` in `ns`, as its ConfigMap records them.
async fn consumers(client: &Client, ns: &str, resource: &str) -> Option<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = api
        .get_opt(&format!("tether-shared-{resource}"))
        .await
        .unwrap()?;
    let data = cm.data.unwrap_or_default();
    let list: Vec<Value> = serde_json::from_str(&data["consumers"]).unwrap();
    Some(
        list.iter()
            .map(|c| c["user"].as_str().unwrap_or_default().to_owned())
            .collect(),
    )
}

/// The first container of Deployment `name` in `ns`, and its replicas.
async fn deployed(client: &Client, ns: &str, name: &str) -> (Option<i32>, Value) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = api.get(name).await.unwrap();
    let replicas = d.spec.as_ref().and_then(|s| s.replicas);
    let d = serde_json::to_value(d).unwrap();
    (
        replicas,
        d["spec"]["template"]["spec"]["containers"][0].clone(),
    )
}

/// The memory a container requests and is limited to.
fn memory(container: &Value) -> (&str, &str) {
    let r = &container["resources"];
    (
        r["requests"]["memory"].as_str().unwrap_or_default(),
        r["limits"]["memory"].as_str().unwrap_or_default(),
    )
}

/// The line `up` printed for resource `r`'s apply.
fn applied<'a>(said: &'a str, r: &str) -> &'a str {
    let head = format!("[{r}] deploy: ");
    said.lines()
        .find(|l| l.starts_with(&head) && !l.ends_with("applying"))
        .unwrap_or_else(|| panic!("no deploy line for {r} in {said}"))
}

#[test]
fn example_pipeline_plays_owner_consumers_production_and_refusal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let client = cluster.client.clone();
    let _lock = POLICY.lock().unwrap_or_else(|e| e.into_inner());
    let _restore = RestorePolicy {
        before: rt.block_on(stored_policy(&client)),
    };
    let s = unique();
    let (stage, production) = (format!("stage-{s}"), format!("production-{s}"));
    let (shared, prod_ns) = (format!("stage-{s}"), format!("pipeline-{s}"));
    let _cleanup: Vec<TestNamespace> = ["olivia", "alice", "bob", "john", "carol"]
        .iter()
        .map(|u| format!("dev-{u}-{s}"))
        .chain([shared.clone(), prod_ns.clone()])
        .map(|name| TestNamespace { name })
        .collect();
    let home = tempfile::tempdir().unwrap();
    let copy = |who: &str| checkout(&home.path().join(who), &s);
    let (admin, olivia, alice, bob, john, carol) = (
        copy("admin"),
        copy("olivia").join("pipeline"),
        copy("alice").join("dashboard"),
        copy("bob").join("dashboard"),
        copy("john").join("dashboard"),
        copy("carol").join("dashboard"),
    );
    let up_stage = ["up", "--ci", "--profile", stage.as_str()];
    let down_stage = ["down", "--profile", stage.as_str()];

    // The admin applies the rules.
    let out = output(command(&admin, &["policy", "apply", "-f", "policy.toml"]));
    assert!(out.status.success(), "the admin's policy apply failed");
    assert!(
        text(&out).contains("applied: 2 rules to ConfigMap tether/tether-policy"),
        "{}",
        text(&out)
    );

    // The owner publishes: the stage instance of both components, olivia its owner.
    let out = as_user("olivia", &olivia, &up_stage);
    assert!(out.status.success(), "olivia's up failed");
    for r in ["ingest", "stats"] {
        assert!(
            text(&out).contains(&format!(
                "[{r}] shared instance in {shared}: created (owner olivia, consumers olivia)"
            )),
            "{}",
            text(&out)
        );
    }
    let instance = rt.block_on(deployments(&client, &shared));
    let names: Vec<_> = instance.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ingest", "stats"]);

    // alice and bob bring the dashboard up in stage and share that instance.
    for (user, dir, consumers_now) in [
        ("alice", &alice, "olivia, alice"),
        ("bob", &bob, "olivia, alice, bob"),
    ] {
        let out = as_user(user, dir, &up_stage);
        assert!(out.status.success(), "{user}'s up failed");
        for r in ["ingest", "stats"] {
            assert!(
                text(&out).contains(&format!(
                    "[{r}] shared instance in {shared}: reused (owner olivia, consumers {consumers_now})"
                )),
                "{}",
                text(&out)
            );
        }
        // The instance is ready as it runs: never said to wait before its pods are listed.
        assert!(
            !text(&out).contains("waiting: 0 of 0 pods ready"),
            "{}",
            text(&out)
        );
        let own = rt.block_on(deployments(&client, &format!("dev-{user}-{s}")));
        let own: Vec<_> = own.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(own, ["dashboard"], "{user}'s own namespace");
    }
    assert_eq!(
        rt.block_on(deployments(&client, &shared)),
        instance,
        "one Deployment per component, the one olivia made"
    );
    for r in ["ingest", "stats"] {
        assert_eq!(
            rt.block_on(consumers(&client, &shared, r)).unwrap(),
            ["olivia", "alice", "bob"]
        );
    }

    // john gets production, with its parameters; a run without a terminal asks --yes.
    let up_prod = ["up", "--ci", "--profile", production.as_str(), "--yes"];
    let out = as_user("john", &john, &up_prod[..4]);
    assert_eq!(out.status.code(), Some(2), "production went ahead unasked");
    assert!(
        text(&out).contains(&format!("profile `{production}` is a production profile")),
        "{}",
        text(&out)
    );
    let out = as_user("john", &john, &up_prod);
    assert!(out.status.success(), "john's up in production failed");
    let (replicas, stats) = rt.block_on(deployed(&client, &prod_ns, "stats"));
    assert_eq!(replicas, Some(2));
    assert_eq!(memory(&stats), ("64Mi", "64Mi"));
    let (replicas, ingest) = rt.block_on(deployed(&client, &prod_ns, "ingest"));
    assert_eq!(replicas, Some(1));
    assert_eq!(memory(&ingest), ("64Mi", "64Mi"));
    let (_, dashboard) = rt.block_on(deployed(&client, &prod_ns, "dashboard"));
    assert_eq!(
        dashboard["env"],
        json!([{"name": "STATS_URL", "value": "http://stats:8080/"}])
    );

    // The owner hands the instance to its consumers; alice's down leaves it for bob,
    // bob's removes it.
    let out = as_user("olivia", &olivia, &down_stage);
    assert!(out.status.success(), "olivia's down failed");
    assert!(
        text(&out).contains("[ingest] left running for alice, bob"),
        "{}",
        text(&out)
    );
    let out = as_user("alice", &alice, &down_stage);
    assert!(out.status.success(), "alice's down failed");
    for r in ["ingest", "stats"] {
        assert!(
            text(&out).contains(&format!("[{r}] left running for bob")),
            "{}",
            text(&out)
        );
        assert_eq!(
            rt.block_on(consumers(&client, &shared, r)).unwrap(),
            ["bob"]
        );
    }
    assert_eq!(rt.block_on(deployments(&client, &shared)), instance);
    let out = as_user("bob", &bob, &down_stage);
    assert!(out.status.success(), "bob's down failed");
    for r in ["ingest", "stats"] {
        assert!(
            text(&out).contains(&format!(
                "[{r}] shared instance in {shared} removed: no consumer left"
            )),
            "{}",
            text(&out)
        );
    }
    rt.block_on(eventually(
        Duration::from_secs(60),
        "the instance and its records to go",
        || async {
            let gone = deployments(&client, &shared).await.is_empty();
            let ingest = consumers(&client, &shared, "ingest").await;
            let stats = consumers(&client, &shared, "stats").await;
            (gone && ingest.is_none() && stats.is_none()).then_some(())
        },
    ));

    // A parameter change: `plan` shows exactly the object it changes, `up` applies it alone.
    let from = format!("[profiles.production-{s}.set.stats]\nreplicas = 2\nmemory = \"64Mi\"");
    let to = from.replace("64Mi", "96Mi");
    rewrite(&john.join("tether.toml"), &[(from.as_str(), to)]);
    let out = as_user(
        "john",
        &john,
        &["plan", "--profile", &production, "-o", "json"],
    );
    assert!(out.status.success(), "john's plan failed");
    let planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(planned["created"], json!([]), "{planned}");
    assert_eq!(planned["deleted"], json!([]), "{planned}");
    assert_eq!(planned["unchanged"], 6, "{planned}");
    let changed = planned["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{planned}");
    assert_eq!(changed[0]["resource"], "stats", "{planned}");
    assert_eq!(
        changed[0]["object"],
        json!({"api_version": "apps/v1", "kind": "Deployment", "namespace": prod_ns, "name": "stats"}),
        "{planned}"
    );
    let memory_of = |kind: &str| {
        json!({
            "path": format!("spec.template.spec.containers[0].resources.{kind}.memory"),
            "old": "64Mi",
            "new": "96Mi",
        })
    };
    assert_eq!(
        changed[0]["fields"],
        json!([memory_of("limits"), memory_of("requests")]),
        "{planned}"
    );
    let out = as_user("john", &john, &up_prod);
    assert!(out.status.success(), "john's second up failed");
    let said = text(&out);
    assert_eq!(
        applied(&said, "stats"),
        "[stats] deploy: 0 created, 1 configured, 1 unchanged"
    );
    assert!(!said.contains("waiting: 0 of 0 pods ready"), "{said}");
    for r in ["ingest", "dashboard"] {
        assert_eq!(
            applied(&said, r),
            format!("[{r}] deploy: 0 created, 0 configured, 2 unchanged")
        );
    }
    let (replicas, stats) = rt.block_on(deployed(&client, &prod_ns, "stats"));
    assert_eq!(replicas, Some(2));
    assert_eq!(memory(&stats), ("96Mi", "96Mi"));
    let out = as_user("john", &john, &["down", "--profile", &production]);
    assert!(out.status.success(), "john's down failed");

    // carol is refused, the rule named, and nothing is made for her.
    let out = as_user("carol", &carol, &up_stage);
    assert_eq!(out.status.code(), Some(2), "carol's up was not refused");
    assert!(
        text(&out).contains(&format!(
            "carol may not instantiate dashboard in {stage}: rule stage-consumers allows olivia, alice, bob"
        )),
        "{}",
        text(&out)
    );
    let carols = format!("dev-carol-{s}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert!(
        rt.block_on(namespaces.get_opt(&carols)).unwrap().is_none(),
        "carol's namespace was made"
    );
    assert_eq!(
        rt.block_on(labelled_in(&client, &carols)),
        Vec::<String>::new()
    );
    assert_eq!(
        rt.block_on(labelled_in(&client, &shared)),
        Vec::<String>::new(),
        "carol's up made the shared instance"
    );
    assert!(
        !carol.join(".tether").exists()
            || std::fs::read_dir(carol.join(".tether"))
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().starts_with("applied-")),
        "carol's up recorded objects as applied"
    );
}
