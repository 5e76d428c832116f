//! Shared instances as two developers who are not the admin: `alice` and `bob` (group
//! `tether:developers`, minted by `scripts/dev-cluster user`) each run their own checkout
//! of one project whose profile `stage` declares the resource `pipeline` shared. The
//! first `up` makes it, the second reuses it (one Deployment, both consumers in
//! ConfigMap `tether-shared-pipeline`), bob's changed manifest is refused with the
//! difference while alice's (the owner's) is deployed, alice's `down` leaves it for bob
//! and bob's removes it. Two `up`s started at once make it exactly once.
//!
//! Namespaces carry a suffix of the run's own, so nothing from a run before is this one's.

use std::{path::Path, time::Duration};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{Api, Client, api::ListParams};

use crate::{
    intercept::web_image,
    process::text,
    support::{TestNamespace, as_user, cluster, developer, eventually, unique},
};

/// One checkout of the project in `dir`: resource `pipeline` (a Deployment of `image`)
/// shared in profile `stage`, whose own namespaces are `dev-{user}-SUFFIX` and whose
/// shared one is `stage-SUFFIX`.
fn checkout(dir: &Path, suffix: &str, image: &str) {
    std::fs::write(
        dir.join("tether.toml"),
        format!(
            "namespace = \"default\"\n\
             \n\
             [resources.pipeline]\n\
             manifests = [\"pipeline.yaml\"]\n\
             \n\
             [profiles.stage]\n\
             namespace = \"dev-{{user}}-{suffix}\"\n\
             shared = [\"pipeline\"]\n\
             shared_namespace = \"stage-{suffix}\"\n"
        ),
    )
    .unwrap();
    set_image(dir, image);
}

fn set_image(dir: &Path, image: &str) {
    std::fs::write(
        dir.join("pipeline.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: pipeline\nspec:\n  \
             replicas: 1\n  selector:\n    matchLabels: {{app: pipeline}}\n  template:\n    \
             metadata:\n      labels: {{app: pipeline}}\n    spec:\n      containers:\n      \
             - name: web\n        image: {image}\n        args: [httpd, -f, -p, \"8080\", -h, /www]\n        \
             readinessProbe:\n          tcpSocket: {{port: 8080}}\n          periodSeconds: 1\n"
        ),
    )
    .unwrap();
}

/// The Deployments tether labels in `ns`, with their UIDs.
async fn deployments(client: &Client, ns: &str) -> Vec<(String, String)> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=tether");
    api.list(&lp)
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
        .collect()
}

/// The users of the instance's consumer list, as ConfigMap `tether-shared-pipeline` has it.
async fn consumers(client: &Client, ns: &str) -> Option<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = api.get_opt("tether-shared-pipeline").await.unwrap()?;
    let data = cm.data.unwrap_or_default();
    let list: Vec<serde_json::Value> = serde_json::from_str(&data["consumers"]).unwrap();
    let mut users: Vec<String> = list
        .iter()
        .map(|c| c["user"].as_str().unwrap_or_default().to_owned())
        .collect();
    users.sort();
    Some(users)
}

/// Guards deleting every namespace of one run (with the admin's credentials), also when
/// the test fails half way.
fn namespaces(suffix: &str) -> Vec<TestNamespace> {
    ["dev-alice", "dev-bob", "stage"]
        .iter()
        .map(|p| TestNamespace {
            name: format!("{p}-{suffix}"),
        })
        .collect()
}

#[test]
fn shared_one_instance_serves_two_developers_and_goes_with_the_last() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let client = cluster.client.clone();
    let one = rt.block_on(web_image(&client, "one"));
    let two = rt.block_on(web_image(&client, "two"));
    let suffix = unique();
    let _cleanup = namespaces(&suffix);
    let stage = format!("stage-{suffix}");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    checkout(a.path(), &suffix, &one);
    checkout(b.path(), &suffix, &one);
    let up = ["up", "--ci", "--profile", "stage"];

    let out = as_user("alice", a.path(), &up);
    assert!(out.status.success(), "alice's up failed");
    assert!(
        text(&out).contains(&format!(
            "[pipeline] shared instance in {stage}: created (owner alice, consumers alice)"
        )),
        "{}",
        text(&out)
    );
    let made = rt.block_on(deployments(&client, &stage));
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(rt.block_on(consumers(&client, &stage)).unwrap(), ["alice"]);

    let out = as_user("bob", b.path(), &up);
    assert!(out.status.success(), "bob's up failed");
    assert!(
        text(&out).contains(&format!(
            "[pipeline] shared instance in {stage}: reused (owner alice, consumers alice, bob)"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        rt.block_on(deployments(&client, &stage)),
        made,
        "the same Deployment"
    );
    assert_eq!(
        rt.block_on(consumers(&client, &stage)).unwrap(),
        ["alice", "bob"],
        "both consumers stay after up --ci exits"
    );
    assert!(
        rt.block_on(deployments(&client, &format!("dev-bob-{suffix}")))
            .is_empty(),
        "nothing of the shared resource in bob's own namespace"
    );

    // bob's change to alice's instance is refused, naming what differs.
    set_image(b.path(), &two);
    let out = as_user("bob", b.path(), &up);
    assert_eq!(out.status.code(), Some(2), "bob's change was not refused");
    let said = text(&out);
    assert!(said.contains("only alice may change it"), "{said}");
    assert!(
        said.contains(&format!(
            "Deployment/pipeline in {stage}: images {one} running, {two} here"
        )),
        "{said}"
    );
    assert_eq!(rt.block_on(deployments(&client, &stage)), made);
    set_image(b.path(), &one);

    // The owner may: the same Deployment, now running the other image.
    set_image(a.path(), &two);
    let out = as_user("alice", a.path(), &up);
    assert!(out.status.success(), "alice's redeploy failed");
    assert!(
        text(&out).contains(&format!(
            "[pipeline] shared instance in {stage}: redeployed by its owner (owner alice, consumers alice, bob)"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(rt.block_on(deployments(&client, &stage)), made);
    let running = rt
        .block_on(Api::<Deployment>::namespaced(client.clone(), &stage).get("pipeline"))
        .unwrap();
    let image = running
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].image.clone().unwrap_or_default());
    assert_eq!(image.as_deref(), Some(two.as_str()));

    let out = as_user("alice", a.path(), &["down", "--profile", "stage"]);
    assert!(out.status.success(), "alice's down failed");
    assert!(
        text(&out).contains("[pipeline] left running for bob"),
        "{}",
        text(&out)
    );
    assert_eq!(rt.block_on(deployments(&client, &stage)), made);
    assert_eq!(rt.block_on(consumers(&client, &stage)).unwrap(), ["bob"]);

    let out = as_user("bob", b.path(), &["down", "--profile", "stage"]);
    assert!(out.status.success(), "bob's down failed");
    assert!(
        text(&out).contains(&format!(
            "[pipeline] shared instance in {stage} removed: no consumer left"
        )),
        "{}",
        text(&out)
    );
    rt.block_on(eventually(
        Duration::from_secs(60),
        "the instance and its record to go",
        || async {
            (deployments(&client, &stage).await.is_empty()
                && consumers(&client, &stage).await.is_none())
            .then_some(())
        },
    ));
}

#[test]
fn shared_two_ups_at_once_make_one_instance() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let client = cluster.client.clone();
    let image = rt.block_on(web_image(&client, "one"));
    let suffix = unique();
    let _cleanup = namespaces(&suffix);
    let stage = format!("stage-{suffix}");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    checkout(a.path(), &suffix, &image);
    checkout(b.path(), &suffix, &image);
    // Minted before the race, so both start at once.
    let _ = (developer("alice"), developer("bob"));
    let up = ["up", "--ci", "--profile", "stage"];
    let (outs_a, outs_b) = std::thread::scope(|s| {
        let alice = s.spawn(|| as_user("alice", a.path(), &up));
        let bob = s.spawn(|| as_user("bob", b.path(), &up));
        (alice.join().unwrap(), bob.join().unwrap())
    });
    assert!(
        outs_a.status.success() && outs_b.status.success(),
        "an up failed"
    );
    let said = [text(&outs_a), text(&outs_b)];
    let created = said
        .iter()
        .filter(|t| t.contains(&format!("shared instance in {stage}: created")))
        .count();
    let reused = said
        .iter()
        .filter(|t| t.contains(&format!("shared instance in {stage}: reused")))
        .count();
    assert_eq!((created, reused), (1, 1), "{said:?}");
    assert_eq!(rt.block_on(deployments(&client, &stage)).len(), 1);
    assert_eq!(
        rt.block_on(consumers(&client, &stage)).unwrap(),
        ["alice", "bob"]
    );

    for (user, dir) in [("alice", a.path()), ("bob", b.path())] {
        let out = as_user(user, dir, &["down", "--profile", "stage"]);
        assert!(out.status.success(), "{user}'s down failed");
    }
    assert!(rt.block_on(consumers(&client, &stage)).is_none());
}
