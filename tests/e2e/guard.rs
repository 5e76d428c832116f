//! The context guard on every command that changes a cluster, and `down` deleting only
//! what tether still owns, against the real cluster.

use std::{net::TcpListener, path::Path, process::Output};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Node, Service},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
    runtime::wait::await_condition,
};
use tether::cluster::Cluster;

use crate::support::{TestNamespace, cluster};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// `tether ARGS` in `dir` with extra environment, run to completion.
fn tether_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tether"));
    c.args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("tether runs");
    eprintln!(
        "$ tether {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A kubeconfig with the test cluster under its own name and again as `prod-eu`, reached
/// at the node's address rather than loopback, so nothing about it looks local.
fn kubeconfig_with_prod(rt: &tokio::runtime::Runtime, cluster: &Cluster, dir: &Path) -> String {
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG is set with the cluster");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = rt
        .block_on(nodes.list(&ListParams::default()))
        .unwrap()
        .items
        .remove(0);
    let node_ip = node
        .status
        .and_then(|s| s.addresses)
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .expect("the node has an InternalIP")
        .address;
    let port = cluster
        .server
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let list = |key: &str| config[key].as_sequence().unwrap().clone();
    let mut prod_cluster = list("clusters")[0].clone();
    prod_cluster["name"] = "prod-eu".into();
    prod_cluster["cluster"]["server"] = format!("https://{node_ip}:{port}").into();
    let mut prod_context = list("contexts")
        .into_iter()
        .find(|c| c["name"].as_str() == Some(cluster.context.as_str()))
        .unwrap();
    prod_context["name"] = "prod-eu".into();
    prod_context["context"]["cluster"] = "prod-eu".into();
    config["clusters"]
        .as_sequence_mut()
        .unwrap()
        .push(prod_cluster);
    config["contexts"]
        .as_sequence_mut()
        .unwrap()
        .push(prod_context);
    let out = dir.join("kubeconfig");
    std::fs::write(&out, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    out.display().to_string()
}

/// A Service and the Deployment behind it, enough for `intercept` to act on.
async fn web(client: &Client, ns: &str) {
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "127.0.0.1:5000/none:0",
                    "ports": [{"containerPort": 8080}]}]}
            }
        }
    }))
    .unwrap();
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]}
    }))
    .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    // The deployment controller annotates the revision once it has seen the object; a
    // snapshot taken before that would see the controller's write as a change by tether.
    let revised = |d: Option<&Deployment>| {
        d.and_then(|d| d.metadata.annotations.as_ref())
            .is_some_and(|a| a.contains_key("deployment.kubernetes.io/revision"))
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        await_condition(deployments, "web", revised),
    )
    .await
    .expect("the deployment controller saw `web` within 30 s")
    .unwrap();
}

/// What a change by tether would alter: the Deployment's generation, spec and annotations
/// (its status and resourceVersion move with the controller), the Service's version.
async fn versions(client: &Client, ns: &str) -> (Option<i64>, String, Option<String>) {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("web")
        .await
        .unwrap();
    let s = Api::<Service>::namespaced(client.clone(), ns)
        .get("web")
        .await
        .unwrap();
    let spec = serde_json::to_string(&(&d.spec, &d.metadata.annotations)).unwrap();
    (d.metadata.generation, spec, s.metadata.resource_version)
}

#[test]
fn every_command_that_changes_the_cluster_refuses_a_context_that_does_not_look_local() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "guard"));
    rt.block_on(web(&cluster.client, &ns.name));
    let before = rt.block_on(versions(&cluster.client, &ns.name));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_with_prod(&rt, &cluster, home.path());
    let kubeconfig = Path::new(&kubeconfig);
    // A process is listening, so without the guard `intercept` would go on to install.
    let local = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = local.local_addr().unwrap().port().to_string();
    // No tether.toml here or above, and an empty config home: the user's file allows nothing.
    let work = tempfile::tempdir().unwrap();
    let config_home = home.path().join("config");
    let env = [
        ("KUBECONFIG", kubeconfig),
        ("XDG_CONFIG_HOME", config_home.as_path()),
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["intercept", "web", "--port", &port, "-n", &ns.name],
        vec!["leave", "web", "-n", &ns.name],
        vec!["uninstall", "--all"],
        vec![
            "connect",
            "-n",
            &ns.name,
            "--proxy-port",
            "0",
            "--dns-port",
            "0",
        ],
    ];
    for args in &commands {
        let mut args = args.clone();
        args.extend(["--context", "prod-eu"]);
        let out = tether_env(work.path(), &args, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("refusing to change the cluster of kube context `prod-eu`"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&config_home.join("tether/config.toml").display().to_string())
                && err.contains(r#"allow_contexts = ["prod-eu"]"#),
            "the refusal names the file to allow it in: {err}"
        );
    }
    // `down` in a project: the refusal names the project's own file.
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tether.toml"), "").unwrap();
    let out = tether_env(project.path(), &["down", "--context", "prod-eu"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refusing to change the cluster"), "{err}");
    assert!(err.contains("tether.toml"), "{err}");
    assert_eq!(
        rt.block_on(versions(&cluster.client, &ns.name)),
        before,
        "nothing was changed in the cluster"
    );
    // Allowed by name in the user's file, the same command goes on to the cluster.
    std::fs::create_dir_all(config_home.join("tether")).unwrap();
    std::fs::write(
        config_home.join("tether/config.toml"),
        "allow_contexts = [\"prod-eu\"]\n",
    )
    .unwrap();
    let out = tether_env(
        work.path(),
        &["leave", "web", "-n", &ns.name, "--context", "prod-eu"],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not intercepted"), "{err}");
    drop(local);
}

#[test]
fn an_unknown_context_is_bad_input_on_every_command() {
    let rt = runtime();
    if rt.block_on(cluster()).is_none() {
        return;
    }
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tether.toml"), "").unwrap();
    for args in [
        vec!["up", "--ci"],
        vec!["down"],
        vec!["intercept", "web", "--port", "1"],
        vec!["leave", "web"],
        vec!["list"],
        vec!["uninstall"],
    ] {
        let mut args = args.clone();
        args.extend(["--context", "no-such-context"]);
        let out = tether_env(project.path(), &args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("kube context `no-such-context` is not in the kubeconfig"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn down_keeps_a_same_name_object_it_did_not_create() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "own"));
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("tether.toml"),
        format!(
            "[resources.config]\nnamespace = \"{}\"\nmanifests = [\"config.yaml\"]\n",
            ns.name
        ),
    )
    .unwrap();
    std::fs::write(
        project.path().join("config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: remade}\ndata: {by: tether}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: copied}\ndata: {by: tether}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\ndata: {by: tether}\n",
    )
    .unwrap();
    let out = tether_env(project.path(), &["up", "--ci"], &[]);
    assert!(out.status.success(), "up --ci succeeds");
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns.name);
    // Someone deletes two of them and makes them again under the same names: one plain,
    // one with tether's labels copied over (as `kubectl get -o yaml | kubectl apply` does).
    let copied_labels = rt.block_on(maps.get("copied")).unwrap().metadata.labels;
    for (name, labels) in [("remade", None), ("copied", copied_labels)] {
        rt.block_on(maps.delete(name, &DeleteParams::default()))
            .unwrap();
        rt.block_on(async {
            while maps.get_opt(name).await.unwrap().is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
            "data": {"by": "someone else"}
        }))
        .unwrap();
        rt.block_on(maps.create(&PostParams::default(), &cm))
            .unwrap();
    }
    let out = tether_env(project.path(), &["down"], &[]);
    assert!(out.status.success(), "down succeeds");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kept ConfigMap/remade") && stdout.contains("kept ConfigMap/copied"),
        "down says what it left alone and why: {stdout}"
    );
    for name in ["remade", "copied"] {
        let cm = rt
            .block_on(maps.get_opt(name))
            .unwrap()
            .unwrap_or_else(|| panic!("{name} made by someone else survives down"));
        assert_eq!(cm.data.unwrap()["by"], "someone else");
    }
    assert!(
        rt.block_on(maps.get_opt("mine")).unwrap().is_none(),
        "what tether made is deleted"
    );
}
