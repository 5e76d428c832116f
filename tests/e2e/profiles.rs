//! Profiles as a developer who is not the admin: `alice` (group `tether:developers`,
//! minted by `scripts/dev-cluster user`) runs the hello fixture with `--profile dev`,
//! which puts it in a namespace of her own under a quota; `down --profile dev` removes
//! it all. A quota too small for the Deployment fails `up --ci` in words.
//!
//! The namespace template carries a suffix of the run's own besides `{user}`, so a
//! namespace still terminating from a run before is never this run's.

use std::{path::Path, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::Api;

use crate::{
    process::text,
    support::{TestNamespace, as_user, cluster, eventually, hello_project, labelled_in, unique},
};

/// The hello project in `dir` with a profile `dev` whose namespace is
/// `dev-{user}-SUFFIX` and whose quota is `quota`; returns the namespace alice gets.
fn profiled_hello(dir: &Path, quota: &str) -> String {
    let suffix = unique();
    let mut config = hello_project(dir, "", "hello-shared", 1);
    config.push_str(&format!(
        "\n[profiles.dev]\nnamespace = \"dev-{{user}}-{suffix}\"\nquota = {quota}\n"
    ));
    std::fs::write(dir.join("tether.toml"), config).unwrap();
    format!("dev-alice-{suffix}")
}

#[test]
fn profiles_a_developer_gets_a_namespace_with_a_quota_and_down_removes_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ns = profiled_hello(dir.path(), "{ pods = \"4\" }");
    // Deleted with the admin's credentials should the test fail half way.
    let _cleanup = TestNamespace { name: ns.clone() };

    let out = as_user("alice", dir.path(), &["up", "--ci", "--profile", "dev"]);
    assert!(out.status.success(), "up --profile dev failed");
    assert!(
        text(&out).contains(&format!("profile dev in namespace {ns} (user alice)")),
        "{}",
        text(&out)
    );
    let quotas: Api<ResourceQuota> = Api::namespaced(cluster.client.clone(), &ns);
    let quota = rt.block_on(quotas.get("tether-quota")).unwrap();
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    assert_eq!(hard.get("pods").map(|q| q.0.as_str()), Some("4"));
    let labelled = rt.block_on(labelled_in(&cluster.client, &ns));
    assert!(
        labelled.contains(&"Deployment hello".to_owned()),
        "{labelled:?}"
    );

    let out = as_user("alice", dir.path(), &["down", "--profile", "dev"]);
    assert!(out.status.success(), "down --profile dev failed");
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    rt.block_on(eventually(
        Duration::from_secs(60),
        "the profile's namespace to go",
        || async {
            match namespaces.get_opt(&ns).await.unwrap() {
                None => Some(()),
                Some(n) if n.metadata.deletion_timestamp.is_some() => Some(()),
                Some(_) => None,
            }
        },
    ));
}

#[test]
fn profiles_a_deployment_beyond_the_quota_fails_up_in_words() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(_cluster) = rt.block_on(cluster()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ns = profiled_hello(dir.path(), "{ pods = \"0\" }");
    let _cleanup = TestNamespace { name: ns.clone() };

    let out = as_user(
        "alice",
        dir.path(),
        &["up", "--ci", "--profile", "dev", "--timeout", "30"],
    );
    assert!(!out.status.success(), "up --ci succeeded beyond the quota");
    let said = text(&out);
    assert!(said.contains("exceeded quota"), "{said}");

    let out = as_user("alice", dir.path(), &["down", "--profile", "dev"]);
    assert!(out.status.success(), "down --profile dev failed");
}
