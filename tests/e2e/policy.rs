//! The cluster's policy, with real, different identities: the admin (the default
//! kubeconfig, group `system:masters`) applies a policy; `carol` and `alice` (group
//! `tether:developers`, minted by `scripts/dev-cluster user`) are what it decides about.
//! A developer cannot rewrite it (the cluster refuses), carol is refused `up` in a
//! governed profile with the rule and her name in the message and nothing made, alice
//! gets her resource up, a policy file with an error changes nothing, and a production
//! profile needs `--yes` without a terminal.
//!
//! The policy is one ConfigMap for the whole cluster: the tests that write it hold a
//! lock, their profile names carry a suffix of the run's own (so the rules govern no
//! one else's profiles), and the policy found at the start is put back at the end.

use std::{path::Path, process::Output, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};

use crate::{
    process::{command, output, text},
    support::{
        POLICY, RestorePolicy, TestNamespace, as_user, cluster, eventually, hello_project,
        labelled_in, stored_policy, unique,
    },
};

/// `tether ARGS` in `dir` as the admin.
fn as_admin(dir: &Path, args: &[&str]) -> Output {
    output(command(dir, args))
}

/// The hello project in `dir` with a profile `NAME` whose namespace is
/// `NAME-{user}` and `extra` lines in its table; returns the profile's name.
fn profiled_hello(dir: &Path, kind: &str, extra: &str) -> String {
    let profile = format!("{kind}-{}", unique());
    let mut config = hello_project(dir, "", "hello-policy", 1);
    config.push_str(&format!(
        "\n[profiles.{profile}]\nnamespace = \"{profile}-{{user}}\"\n{extra}"
    ));
    std::fs::write(dir.join("tether.toml"), config).unwrap();
    profile
}

async fn absent(client: &Client, namespace: &str) -> bool {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.get_opt(namespace).await.unwrap().is_none()
}

#[test]
fn policy_refuses_carol_allows_alice_and_only_an_admin_writes_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let _lock = POLICY.lock().unwrap_or_else(|e| e.into_inner());
    let _restore = RestorePolicy {
        before: rt.block_on(stored_policy(&cluster.client)),
    };
    let dir = tempfile::tempdir().unwrap();
    let stage = profiled_hello(dir.path(), "stage", "");
    let policy = format!(
        "# who may deploy what where\n\
         [[rule]]\n\
         name = \"stage-consumers\"\n\
         profiles = [\"{stage}\"]\n\
         resources = [\"hello\"]\n\
         users = [\"alice\", \"bob\"]\n"
    );
    std::fs::write(dir.path().join("policy.toml"), &policy).unwrap();

    // The admin applies it; everyone reads it.
    let out = as_admin(dir.path(), &["policy", "apply", "-f", "policy.toml"]);
    assert!(out.status.success(), "the admin's policy apply failed");
    assert!(text(&out).contains("applied: 1 rule to ConfigMap tether/tether-policy"));
    assert_eq!(
        rt.block_on(stored_policy(&cluster.client)).as_deref(),
        Some(policy.as_str())
    );
    let out = as_user("carol", dir.path(), &["policy", "show", "-o", "json"]);
    assert!(out.status.success(), "carol cannot read the policy");
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["rules"][0]["name"], "stage-consumers");
    assert_eq!(
        shown["rules"][0]["users"],
        serde_json::json!(["alice", "bob"])
    );

    // A developer may not rewrite it: the cluster refuses, and it stays as it was.
    std::fs::write(
        dir.path().join("mine.toml"),
        format!("[[rule]]\nname = \"mine\"\nprofiles = [\"{stage}\"]\nresources = [\"*\"]\nusers = [\"carol\"]\n"),
    )
    .unwrap();
    let out = as_user("carol", dir.path(), &["policy", "apply", "-f", "mine.toml"]);
    assert_eq!(out.status.code(), Some(2), "carol rewrote the policy");
    let said = text(&out);
    assert!(
        said.contains("the cluster refused carol writing ConfigMap tether/tether-policy")
            && said.contains("tether:admins"),
        "{said}"
    );
    assert_eq!(
        rt.block_on(stored_policy(&cluster.client)).as_deref(),
        Some(policy.as_str())
    );

    // carol is refused before anything is made: no namespace, no labelled object.
    let carols = format!("{stage}-carol");
    let _carols = TestNamespace {
        name: carols.clone(),
    };
    let out = as_user("carol", dir.path(), &["up", "--ci", "--profile", &stage]);
    assert_eq!(out.status.code(), Some(2), "carol's up was not refused");
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "carol may not instantiate hello in {stage}: rule stage-consumers allows alice, bob"
        )),
        "{said}"
    );
    assert!(
        rt.block_on(absent(&cluster.client, &carols)),
        "carol's namespace was made"
    );
    assert_eq!(
        rt.block_on(labelled_in(&cluster.client, &carols)),
        Vec::<String>::new()
    );
    let applied = std::fs::read_dir(dir.path().join(".tether"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("applied-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(applied, 0, "carol's up recorded objects as applied");

    // intercept and connect with the profile are decided by the same rule, before
    // anything is looked up or installed.
    let out = as_user(
        "carol",
        dir.path(),
        &[
            "intercept",
            "hello",
            "-p",
            "1:80",
            "-n",
            &carols,
            "--profile",
            &stage,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "carol's intercept was not refused"
    );
    assert!(
        text(&out).contains(&format!(
            "carol may not intercept hello in {stage}: rule stage-consumers allows alice, bob"
        )),
        "{}",
        text(&out)
    );
    // Leaving `--profile` off does not step around the rules: carol's namespace is the
    // stage profile's, and the same rule decides.
    let out = as_user(
        "carol",
        dir.path(),
        &["intercept", "hello", "-p", "1:80", "-n", &carols],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "carol may not intercept hello in {stage}: rule stage-consumers allows alice, bob"
        )),
        "{}",
        text(&out)
    );
    let out = as_user(
        "carol",
        dir.path(),
        &[
            "connect",
            "--proxy-port",
            "0",
            "--dns-port",
            "0",
            "--profile",
            &stage,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "carol's connect was not refused"
    );
    assert!(
        text(&out).contains(&format!(
            "carol may not connect to {stage}: rule stage-consumers allows alice, bob"
        )),
        "{}",
        text(&out)
    );

    // alice, whom the rule allows, gets hello up; down removes it.
    let alices = format!("{stage}-alice");
    let _alices = TestNamespace {
        name: alices.clone(),
    };
    let out = as_user("alice", dir.path(), &["up", "--ci", "--profile", &stage]);
    assert!(out.status.success(), "alice's up failed");
    let labelled = rt.block_on(labelled_in(&cluster.client, &alices));
    assert!(
        labelled.contains(&"Deployment hello".to_owned()),
        "{labelled:?}"
    );
    let out = as_user("alice", dir.path(), &["down", "--profile", &stage]);
    assert!(out.status.success(), "alice's down failed");
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    rt.block_on(eventually(
        Duration::from_secs(60),
        "alice's profile namespace to go",
        || async {
            match namespaces.get_opt(&alices).await.unwrap() {
                None => Some(()),
                Some(n) if n.metadata.deletion_timestamp.is_some() => Some(()),
                Some(_) => None,
            }
        },
    ));

    // A file with an error is bad input at file:line:col, and nothing is applied.
    std::fs::write(
        dir.path().join("bad.toml"),
        format!("[[rule]]\nname = \"x\"\nprofiles = [\"{stage}\"]\nresources = [\"*\"]\nuser = [\"carol\"]\n"),
    )
    .unwrap();
    let out = as_admin(dir.path(), &["policy", "apply", "-f", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2), "a bad policy file was applied");
    let said = text(&out);
    assert!(
        said.contains("bad.toml:5:1: unknown key `user`; did you mean `users`?"),
        "{said}"
    );
    assert_eq!(
        rt.block_on(stored_policy(&cluster.client)).as_deref(),
        Some(policy.as_str())
    );
}

#[test]
fn policy_a_production_profile_changes_nothing_without_a_terminal_or_yes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prod = profiled_hello(dir.path(), "prod", "production = true\n");
    let namespace = format!("{prod}-alice");
    let _cleanup = TestNamespace {
        name: namespace.clone(),
    };
    // The tests' commands have no terminal (stdin is /dev/null).
    let out = as_user("alice", dir.path(), &["up", "--ci", "--profile", &prod]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "up went ahead in production unasked"
    );
    let said = text(&out);
    assert!(
        said.contains(&format!("profile `{prod}` is a production profile"))
            && said.contains("pass --yes"),
        "{said}"
    );
    assert!(
        rt.block_on(absent(&cluster.client, &namespace)),
        "the production namespace was made"
    );
    assert_eq!(
        rt.block_on(labelled_in(&cluster.client, &namespace)),
        Vec::<String>::new()
    );

    // --yes is the confirmation a script gives.
    let out = as_user(
        "alice",
        dir.path(),
        &["up", "--ci", "--profile", &prod, "--yes"],
    );
    assert!(out.status.success(), "up --yes in production failed");
    let labelled = rt.block_on(labelled_in(&cluster.client, &namespace));
    assert!(
        labelled.contains(&"Deployment hello".to_owned()),
        "{labelled:?}"
    );
    let out = as_user("alice", dir.path(), &["down", "--profile", &prod]);
    assert!(out.status.success(), "down --profile in production failed");
}
