//! A Job's pod template cannot change, so a changed Job that tether made is replaced (and
//! runs again) instead of failing the deploy; a Job someone else made is never replaced.

use std::path::Path;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;

use crate::{
    process::tether,
    support::{TestNamespace, cluster, hello_project},
};

fn job(args: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n  backoffLimit: 1\n  \
         template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: once\n        \
         image: hello\n        args: [{args}]\n"
    )
}

fn up(dir: &Path) -> String {
    let out = tether(dir, &["up", "--ci", "--timeout", "180"]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    printed
}

#[test]
fn a_changed_job_is_replaced_and_runs_again() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "jobs"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut config = hello_project(dir, "", &ns.name, crate::support::free_port());
    config = config.replace(
        "manifests = [\"hello.yaml\"]",
        "manifests = [\"hello.yaml\", \"job.yaml\"]",
    );
    std::fs::write(dir.join("tether.toml"), config).unwrap();
    // The Job's manifest is not an input of the image.
    std::fs::write(dir.join(".dockerignore"), "tether.toml\njob.yaml\n").unwrap();
    std::fs::write(dir.join("job.yaml"), job("\"true\"")).unwrap();
    up(dir);
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &ns.name);
    let first = rt.block_on(jobs.get("once")).unwrap().metadata.uid;

    std::fs::write(dir.join("job.yaml"), job("\"echo\", \"again\"")).unwrap();
    let printed = up(dir);
    assert!(
        printed.contains("[hello] deploy: 0 created, 1 configured, 2 unchanged"),
        "{printed}"
    );
    let second = rt.block_on(jobs.get("once")).unwrap();
    assert_ne!(second.metadata.uid, first, "the Job was made again");
    let args = second.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert_eq!(args, ["echo", "again"]);

    let out = tether(dir, &["down"]);
    assert!(out.status.success());
    assert!(rt.block_on(jobs.get_opt("once")).unwrap().is_none());
}
