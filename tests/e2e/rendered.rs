//! Manifests that are rendered, not written: the shop's users service deployed from a
//! kustomize overlay and from its Helm chart (`examples/shop/users/overlays/dev`,
//! `examples/shop/users/helm`), and a first `tether.toml` written by `tether init`.
//! Each goes up, a changed value re-applies exactly the object it changes, the renderer
//! runs once per round, and `down` removes what `up` made and nothing else.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Service},
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};

use crate::{
    process::{Running, command, output, repo_copy, tether},
    support::{cluster, labelled_in, unique},
    up::{DownOnPanic, SHOP},
};

/// Deletes the namespace `up` created from the example's manifests (`down` keeps
/// namespaces), also when the test fails.
struct DeleteNamespace<'a> {
    client: &'a Client,
    rt: &'a tokio::runtime::Runtime,
    name: String,
}

impl Drop for DeleteNamespace<'_> {
    fn drop(&mut self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = self
            .rt
            .block_on(api.delete(&self.name, &DeleteParams::background()));
    }
}

/// `kustomize` and `helm` as tether finds them on PATH, each run counted: a round reads a
/// resource's manifests once, for its plan and its apply alike.
struct CountedRenderers {
    bin: tempfile::TempDir,
}

impl CountedRenderers {
    fn new() -> CountedRenderers {
        let bin = tempfile::tempdir().unwrap();
        let log = bin.path().join("runs");
        let on_path = |program: &str| -> Option<PathBuf> {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        };
        // kustomize itself may be missing: kubectl's serves (`kustomize build DIR`).
        let kustomize = match on_path("kustomize") {
            Some(real) => format!("exec {} \"$@\"", real.display()),
            None => "exec kubectl kustomize \"$2\"".to_owned(),
        };
        let helm = on_path("helm").map(|real| format!("exec {} \"$@\"", real.display()));
        for (name, run) in [("kustomize", Some(kustomize)), ("helm", helm)] {
            let Some(run) = run else { continue };
            let path = bin.path().join(name);
            let script = format!("#!/bin/sh\necho {name} >>{}\n{run}\n", log.display());
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        CountedRenderers { bin }
    }

    /// `tether ARGS` in `dir`, finding the counted renderers first.
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = command(dir, args);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::iter::once(self.bin.path().to_owned()).chain(std::env::split_paths(&path));
        c.env("PATH", std::env::join_paths(path).unwrap());
        c
    }

    /// How many times a renderer ran so far.
    fn runs(&self) -> usize {
        std::fs::read_to_string(self.bin.path().join("runs"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

/// In `dir` (one folder, not its subfolders), every `from` becomes `to`.
fn replace_in_folder(dir: &Path, from: &str, to: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace(from, to)).unwrap();
        }
    }
}

/// The users service from `folder` (under `examples/shop/users` of a copy of the
/// repository), whose manifests name `namespace`: up; `from` → `to` in `file` while a
/// `tether up` runs re-applies one object of the `objects` the users resource has,
/// making two replicas; down.
fn a_changed_value_reapplies_one_object(
    folder: &str,
    namespace: &str,
    (file, from, to): (&str, &str, &str),
    objects: usize,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let repo = repo_copy();
    let dir = repo.path().join("examples/shop/users").join(folder);
    // A namespace of this run's own: one still terminating from a run before is no other.
    let ns = format!("{namespace}-{}", unique());
    replace_in_folder(&dir, namespace, &ns);
    let _namespace = DeleteNamespace {
        client: &cluster.client,
        rt: &rt,
        name: ns.clone(),
    };
    let _down = DownOnPanic::new(&dir, None);
    let renderers = CountedRenderers::new();

    let out = output(renderers.command(&dir, &["up", "--ci"]));
    assert!(out.status.success(), "tether up --ci failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("[users] ready"));
    assert_eq!(
        renderers.runs(),
        1,
        "one round, one rendering of the manifests"
    );
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let replicas = |d: Deployment| d.spec.and_then(|s| s.replicas);
    let users = rt.block_on(deployments.get("users")).unwrap();
    assert_eq!(replicas(users), Some(1));
    // A ConfigMap tether did not make, in the same namespace.
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns);
    let foreign: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "not-tethers"}})).unwrap();
    rt.block_on(cms.create(&PostParams::default(), &foreign))
        .unwrap();

    let mut up = Running::spawn(renderers.command(&dir, &["up", "--no-tui"]));
    up.wait_for(0, Duration::from_secs(300), "users to be ready", |l| {
        l.contains("[users] ready")
    });
    up.wait_for(0, Duration::from_secs(60), "the watcher", |l| {
        l.starts_with("watching ")
    });
    assert_eq!(
        renderers.runs(),
        2,
        "the first round of a second up renders once"
    );
    let mark = up.mark();
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} no longer has {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let applied = up.wait_for(mark, Duration::from_secs(60), "the re-apply", |l| {
        l.starts_with("[users] deploy: ") && !l.ends_with("applying")
    });
    assert_eq!(
        applied,
        format!(
            "[users] deploy: 0 created, 1 configured, {} unchanged",
            objects - 1
        )
    );
    assert!(
        !up.since(mark).iter().any(|l| l.contains("build:")),
        "a manifest-only change built: {:?}",
        up.since(mark)
    );
    up.wait_for(mark, Duration::from_secs(120), "users ready again", |l| {
        l.contains("[users] ready")
    });
    assert_eq!(renderers.runs(), 3, "the change's round renders once");
    let users = rt.block_on(deployments.get("users")).unwrap();
    assert_eq!(replicas(users), Some(2));
    assert!(up.interrupt(), "tether up stops on Ctrl-C");

    let out = tether(&dir, &["down"]);
    assert!(out.status.success(), "tether down failed");
    assert_eq!(
        rt.block_on(labelled_in(&cluster.client, &ns)),
        Vec::<String>::new()
    );
    assert!(
        rt.block_on(cms.get_opt("not-tethers")).unwrap().is_some(),
        "down deleted what it did not make"
    );
}

#[test]
fn a_kustomize_overlay_goes_up_reapplies_a_changed_replica_count_and_goes_down() {
    // Namespace, Secret (from a secretGenerator), Service, Deployment.
    a_changed_value_reapplies_one_object(
        "overlays/dev",
        "users-dev",
        ("kustomization.yaml", "count: 1", "count: 2"),
        4,
    );
}

#[test]
fn a_helm_chart_goes_up_reapplies_a_changed_value_and_goes_down() {
    // Secret, Service, Deployment; the Namespace is a resource of its own.
    a_changed_value_reapplies_one_object(
        "helm",
        "users-helm",
        ("values-dev.yaml", "replicas: 1", "replicas: 2"),
        3,
    );
}

#[test]
fn tether_init_in_a_copy_of_a_shop_service_writes_a_file_up_accepts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    // The products service deploys into the shop's namespace, with the shop's base.
    let _turn = SHOP.lock().unwrap_or_else(|e| e.into_inner());
    let repo = repo_copy();
    let products = repo.path().join("examples/shop/products");
    std::fs::remove_file(products.join("tether.toml")).unwrap();
    let _down = DownOnPanic::new(&products, None);

    let out = tether(&products, &["init"]);
    assert!(out.status.success(), "tether init failed");
    let written = std::fs::read_to_string(products.join("tether.toml")).unwrap();
    for line in [
        "namespace = \"api\"\n",
        "include = [\"../base\"]\n",
        "[images.products]\n",
        "depends_on = [\"shop-base\"]",
    ] {
        assert!(written.contains(line), "{line:?} in:\n{written}");
    }
    // A second init keeps the file.
    let again = tether(&products, &["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The binary the image copies, built as the developer builds it (init cannot know
    // how: the file it wrote says where `host_build` goes).
    let built = std::process::Command::new(repo.path().join("examples/shop/build-static"))
        .arg("products")
        .env("CARGO_TARGET_DIR", crate::process::shop_target())
        .status()
        .unwrap();
    assert!(built.success(), "build-static products failed");

    let out = tether(&products, &["up", "--ci"]);
    assert!(out.status.success(), "tether up --ci on init's file failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[products] ready"), "{stdout}");
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), "api");
    assert!(
        rt.block_on(services.get_opt("products-svc"))
            .unwrap()
            .is_some()
    );
    let out = tether(&products, &["down"]);
    assert!(out.status.success(), "tether down failed");
    assert!(
        rt.block_on(services.get_opt("products-svc"))
            .unwrap()
            .is_none()
    );
}
