//! `tether plan` before `up`: the hello fixture runs in a profile whose `set` gives its
//! containers an env variable and a memory size; a changed `replicas` in that `set` is
//! planned as exactly one field of one Deployment, and the `up` after it configures that
//! object alone. `down --profile` removes it all.

use std::{path::Path, time::Duration};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

use crate::{
    process::{command, output},
    support::{TestNamespace, cluster, eventually, hello_project, unique},
};

/// The hello project with a profile `p` in namespace `ns` that sets `set` over `hello`.
fn write_project(dir: &Path, ns: &str, set: &str) {
    let mut config = hello_project(dir, "", "hello-shared", 1);
    config.push_str(&format!(
        "\n[profiles.p]\nnamespace = \"{ns}\"\n\n[profiles.p.set.hello]\n{set}"
    ));
    std::fs::write(dir.join("tether.toml"), config).unwrap();
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = output(command(dir, args));
    assert!(out.status.success(), "tether {} failed", args.join(" "));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn plan(dir: &Path) -> Value {
    let out = output(command(dir, &["plan", "--profile", "p", "-o", "json"]));
    assert!(out.status.success(), "tether plan failed");
    serde_json::from_slice(&out.stdout).expect("plan -o json prints one JSON document")
}

/// The line `up` printed for `hello`'s apply.
fn hello_applied(said: &str) -> &str {
    said.lines()
        .find(|l| l.starts_with("[hello] deploy: ") && !l.ends_with("applying"))
        .unwrap_or_else(|| panic!("no deploy line for hello in {said}"))
}

#[test]
fn plan_shows_exactly_the_changed_object_and_up_applies_only_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ns = format!("plan-{}", unique());
    let _cleanup = TestNamespace { name: ns.clone() };
    let set = "memory = \"64Mi\"\nenv = { GREETING = \"planned\" }\n";
    write_project(dir.path(), &ns, set);

    let before = plan(dir.path());
    let created: Vec<_> = before["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["object"]["kind"].as_str().unwrap(),
                o["object"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            format!("Namespace {ns}"),
            "Deployment hello".into(),
            "Service hello".into()
        ],
        "{before}"
    );
    assert_eq!(before["images"][0]["image"], "hello", "{before}");

    run(dir.path(), &["up", "--ci", "--profile", "p"]);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let hello = serde_json::to_value(rt.block_on(deployments.get("hello")).unwrap()).unwrap();
    let container = &hello["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["env"],
        json!([{"name": "GREETING", "value": "planned"}])
    );
    assert_eq!(container["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(container["resources"]["limits"]["memory"], "64Mi");

    let same = plan(dir.path());
    assert_eq!(same["created"], json!([]), "{same}");
    assert_eq!(same["changed"], json!([]), "{same}");
    assert_eq!(same["deleted"], json!([]), "{same}");
    assert_eq!(same["unchanged"], 3, "{same}");

    write_project(dir.path(), &ns, &format!("{set}replicas = 2\n"));
    let planned = plan(dir.path());
    assert_eq!(planned["created"], json!([]), "{planned}");
    assert_eq!(planned["deleted"], json!([]), "{planned}");
    assert_eq!(planned["unchanged"], 2, "{planned}");
    assert_eq!(
        planned["changed"],
        json!([{
            "resource": "hello",
            "object": {"api_version": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "hello"},
            "fields": [{"path": "spec.replicas", "old": 1, "new": 2}],
        }]),
        "{planned}"
    );
    let text = run(dir.path(), &["plan", "--profile", "p"]);
    assert!(
        text.contains(&format!(
            "~ Deployment/hello in {ns} (hello)\n    spec.replicas: 1 → 2\n0 to create, 1 to change, 2 unchanged, 0 to delete\n"
        )),
        "{text}"
    );

    let said = run(dir.path(), &["up", "--ci", "--profile", "p"]);
    assert_eq!(
        hello_applied(&said),
        "[hello] deploy: 0 created, 1 configured, 1 unchanged"
    );
    let hello = rt.block_on(deployments.get("hello")).unwrap();
    assert_eq!(hello.spec.and_then(|s| s.replicas), Some(2));

    run(dir.path(), &["down", "--profile", "p"]);
    rt.block_on(eventually(
        Duration::from_secs(60),
        "the profile's Deployment to go",
        || async {
            match deployments.get_opt("hello").await {
                Ok(None) | Err(_) => Some(()),
                Ok(Some(d)) if d.metadata.deletion_timestamp.is_some() => Some(()),
                Ok(Some(_)) => None,
            }
        },
    ));
}
