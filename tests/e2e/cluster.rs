//! The test cluster works, through tether's own client code: an image built through the
//! Docker API and pushed, a Deployment and Service applied, a pod ready, an HTTP answer
//! through the API server's port-forward, the same answer from another pod through
//! cluster DNS and Service routing, exec, and logs.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{AttachParams, LogParams, PostParams},
};
use tether::{
    build::{Builder, HashCache, Registry},
    config::{Image, Location, Resource},
    deploy::{Deployer, rollout},
    forward,
    kube::PodSet,
    logs,
};
use tokio::{io::AsyncReadExt, sync::mpsc};
use tokio_util::sync::CancellationToken;

use crate::support::{TestNamespace, cluster, eventually};

#[tokio::test]
async fn build_push_deploy_forward_dns_exec_logs() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = TestNamespace::create(&client, "tether-it-cluster").await;

    // A context with the host's static busybox and the fixture's files.
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello");
    for f in ["Dockerfile", "index.html", "hello.yaml"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.path().join("busybox"))
        .expect("busybox-static is installed by scripts/dev-cluster");
    let at = Location {
        file: dir.path().join("tether.toml"),
        line: 1,
        col: 1,
    };
    let image = Image {
        name: format!("hello-{}", ns.name),
        context: dir.path().to_path_buf(),
        dockerfile: dir.path().join("Dockerfile"),
        host_build: None,
        inputs: vec![dir.path().to_path_buf()],
        live_update: None,
        declared_at: at.clone(),
    };

    // Build through the Docker API and push to the registry the cluster advertises.
    let registry = Registry::resolve(None, &client).await.unwrap();
    let builder = Builder::new(registry);
    let built = builder
        .ensure(&image, &mut HashCache::default(), false, |_| {})
        .await
        .unwrap();
    assert!(built.rebuilt, "a fresh image is built");
    let again = builder
        .ensure(&image, &mut HashCache::default(), false, |_| {})
        .await
        .unwrap();
    assert!(
        !again.rebuilt,
        "the same inputs are found in the registry, not built again"
    );
    assert_eq!(again.reference, built.reference);

    // Apply through tether's deployer, with the manifest's `image: hello` pinned.
    let manifest = std::fs::read_to_string(dir.path().join("hello.yaml"))
        .unwrap()
        .replace("image: hello", &format!("image: {}", image.name));
    std::fs::write(dir.path().join("hello.yaml"), manifest).unwrap();
    let resource = Resource {
        name: "hello".into(),
        namespace: ns.name.clone(),
        force_namespace: false,
        manifests: vec![tether::config::Manifests::File(
            dir.path().join("hello.yaml"),
        )],
        depends_on: vec![],
        port_forwards: vec![],
        ready_cmd: None,
        status_cmd: None,
        overrides: Default::default(),
        declared_at: at,
    };
    let deployer =
        Deployer::new(client.clone(), dir.path(), &cluster.context, &cluster.id).unwrap();
    let refs = BTreeMap::from([(image.name.clone(), built.reference.clone())]);
    let read = tether::deploy::sources::read(&resource);
    let rendered = deployer
        .render(&resource, &read, &refs, None)
        .await
        .unwrap();
    let counts = deployer.apply("hello", &rendered).await.unwrap();
    assert_eq!(counts.created, 2);
    let workload = rendered.workloads[0].clone();
    eventually(
        Duration::from_secs(120),
        "the hello pod to be ready",
        || async {
            let ready = rollout::rolled_out(&client, &workload).await.ok()?;
            if !ready {
                if let Some(why) = rollout::explain(&client, &workload).await {
                    eprintln!("waiting: {}", why.reason);
                }
            }
            ready.then_some(())
        },
    )
    .await;
    assert_eq!(
        deployer.apply("hello", &rendered).await.unwrap().unchanged,
        2,
        "an unchanged object is not sent again"
    );

    // Follow its logs from now on.
    let pods_of_hello = PodSet::watch(client.clone(), workload.clone());
    let (line_tx, mut line_rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    tokio::spawn(logs::follow(
        pods_of_hello.clone(),
        "hello".into(),
        line_tx,
        stop.clone(),
    ));

    // HTTP through the API server's port-forward.
    let listener = forward::bind(0).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_target_tx, target_rx) = tokio::sync::watch::channel(Some(pods_of_hello.clone()));
    let (health_tx, _health_rx) = mpsc::unbounded_channel();
    tokio::spawn(forward::serve(
        listener,
        "hello".into(),
        8080,
        target_rx,
        health_tx,
        stop.clone(),
    ));
    let body = reqwest::get(format!("http://127.0.0.1:{port}/index.html"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.trim(), "hello from tether");

    // The same page from another pod, through cluster DNS and the Service.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let script = format!(
        "/bin/busybox wget -qO- http://hello.{ns}/index.html && /bin/busybox wget -qO- http://hello.{ns}.svc.cluster.local/index.html",
        ns = ns.name
    );
    let caller: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "caller"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "caller",
                "image": built.reference,
                "command": ["/bin/busybox", "sh", "-c", script],
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &caller).await.unwrap();
    let phase = eventually(
        Duration::from_secs(90),
        "the caller pod to finish",
        || async {
            let p = pods.get("caller").await.ok()?;
            let phase = p.status?.phase?;
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
        },
    )
    .await;
    let out = pods.logs("caller", &LogParams::default()).await.unwrap();
    assert_eq!(phase, "Succeeded", "caller output: {out}");
    assert_eq!(out, "hello from tether\nhello from tether\n");

    // Exec in the server pod.
    let pod = workload
        .pods(&client)
        .await
        .unwrap()
        .into_iter()
        .find(rollout::is_ready)
        .unwrap();
    let pod_name = pod.metadata.name.unwrap();
    let mut exec = pods
        .exec(
            &pod_name,
            ["/bin/busybox", "cat", "/www/index.html"],
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await
        .unwrap();
    let mut stdout = exec.stdout().unwrap();
    let mut text = String::new();
    stdout.read_to_string(&mut text).await.unwrap();
    exec.join().await.unwrap();
    assert_eq!(text.trim(), "hello from tether");

    // httpd logs each request it answers.
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let l = line_rx.recv().await.expect("the log follower ended");
            if l.text.contains("response:200") {
                return l;
            }
        }
    })
    .await
    .expect("a request shows in the pod's log within 30s");
    assert_eq!(line.resource, "hello");
    assert_eq!(line.pod, pod_name);
    stop.cancel();
}
