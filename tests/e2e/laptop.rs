//! The laptop namespace is honest: from inside it, what a developer's machine cannot reach
//! of a remote cluster (a pod IP, a ClusterIP, cluster DNS, the node's other ports) is out
//! of reach, and what it can (the API server at the kubeconfig's address, the registry)
//! answers. Every address the laptop must not reach is first reached from the node, so a
//! failure inside means the namespace, not a broken target.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::{
    Api,
    api::{ListParams, PostParams},
};

use crate::support::{TestNamespace, cluster, eventually, laptop::Laptop};

/// How long a connection that should fail may take to fail: a dropped SYN shows as a
/// timeout, a missing route fails at once.
const REFUSE_WITHIN: Duration = Duration::from_secs(2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A pod that accepts TCP on 8080 (busybox httpd) behind a NodePort Service, ready.
/// Returns the pod IP, the ClusterIP and the node port.
async fn web(client: &kube::Client, ns: &str) -> (IpAddr, IpAddr, u16) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "web",
                "image": "127.0.0.1:5000/busybox:latest",
                "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"port": 8080, "targetPort": 8080}]}
    }))
    .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let pod_ip = eventually(
        Duration::from_secs(90),
        "the web pod to be ready",
        || async {
            let status = pods.get("web").await.ok()?.status?;
            let ready = status
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(status.pod_ip?)
        },
    )
    .await;
    let spec = service.spec.unwrap();
    (
        pod_ip.parse().unwrap(),
        spec.cluster_ip.unwrap().parse().unwrap(),
        spec.ports.unwrap()[0].node_port.unwrap() as u16,
    )
}

async fn node_ip(client: &kube::Client) -> IpAddr {
    let node = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    node.status
        .and_then(|s| s.addresses)
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .expect("the node has an InternalIP")
        .address
        .parse()
        .unwrap()
}

/// One HTTP/1.0 GET over `stream`; the whole answer.
fn http_get(mut stream: TcpStream, path: &str) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: registry\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_laptop_reaches_the_api_server_and_the_registry_and_nothing_else() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "laptop"));
    let (pod_ip, cluster_ip, node_port) = rt.block_on(web(&cluster.client, &ns.name));
    let node_ip = rt.block_on(node_ip(&cluster.client));
    let api = laptop.api_server();
    let host = api.ip();
    let at = |ip: IpAddr, port: u16| SocketAddr::new(ip, port);

    // What the node reaches and the laptop must not: (what, from the node, from the laptop).
    let cluster_only = [
        ("the pod", at(pod_ip, 8080), at(pod_ip, 8080)),
        (
            "the Service's ClusterIP",
            at(cluster_ip, 8080),
            at(cluster_ip, 8080),
        ),
        (
            "the API's ClusterIP",
            at("10.96.0.1".parse().unwrap(), 443),
            at("10.96.0.1".parse().unwrap(), 443),
        ),
        (
            "the API server at the node's address",
            at(node_ip, api.port()),
            at(node_ip, api.port()),
        ),
        ("the NodePort", at(host, node_port), at(host, node_port)),
        ("the kubelet", at(host, 10250), at(host, 10250)),
        // etcd listens on the node's loopback only; its port at the laptop's way in
        // must not lead anywhere either.
        ("etcd", "127.0.0.1:2379".parse().unwrap(), at(host, 2379)),
    ];
    // (kube-proxy programs a new Service's rules a moment after its endpoint is ready.)
    for (what, from_node, _) in &cluster_only {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = TcpStream::connect_timeout(from_node, Duration::from_secs(5)) {
            assert!(
                std::time::Instant::now() < deadline,
                "the node cannot reach {what} at {from_node}: {e}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    for (what, _, from_laptop) in &cluster_only {
        let started = std::time::Instant::now();
        match laptop.connect_tcp(*from_laptop, REFUSE_WITHIN) {
            Ok(_) => panic!("the laptop reached {what} at {from_laptop}"),
            // No route (cluster addresses) or dropped (the host's own ports).
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::NetworkUnreachable
                        | ErrorKind::HostUnreachable
                        | ErrorKind::TimedOut
                ),
                "{what} at {from_laptop}: {e} ({:?})",
                e.kind()
            ),
        }
        assert!(started.elapsed() < REFUSE_WITHIN * 2);
    }

    // No cluster DNS: the names a pod would resolve do not resolve.
    for name in [
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
        format!("web.{}", ns.name),
    ] {
        match laptop.resolve(&name, Duration::from_secs(15)) {
            None => panic!("looking up {name} on the laptop did not end in 15 s"),
            Some(Ok(addrs)) => panic!("the laptop resolved {name} to {addrs:?}"),
            Some(Err(_)) => {}
        }
    }

    // The API server at the laptop kubeconfig's address: a client made and used inside
    // lists namespaces, this test's among them; tether itself, run inside, sees the pod's
    // Service.
    let names = laptop.block_on(async {
        let client = laptop.client().await;
        let list = tokio::time::timeout(
            Duration::from_secs(20),
            Api::<Namespace>::all(client).list(&ListParams::default()),
        )
        .await
        .expect("the API server answers the laptop within 20 s")
        .expect("the laptop lists namespaces");
        list.items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect::<Vec<_>>()
    });
    assert!(names.contains(&ns.name), "{names:?}");
    let out = laptop
        .command(env!("CARGO_BIN_EXE_tether"))
        .args(["list", "-n", &ns.name])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("tether runs inside the laptop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l.starts_with("web ")),
        "tether list from the laptop: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The registry: at the way in, and at the address tether inside is given (the same as
    // on the node).
    let mut registries = vec![at(host, 5000)];
    if let Some(r) = &laptop.registry {
        registries.push(
            r.parse()
                .expect("TETHER_LAPTOP_REGISTRY is an IP address and port"),
        );
    }
    for registry in registries {
        let stream = laptop
            .connect_tcp(registry, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("the laptop cannot reach the registry at {registry}: {e}"));
        let answer = http_get(stream, "/v2/_catalog");
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "{registry}: {answer}"
        );
        assert!(answer.contains("\"busybox\""), "{registry}: {answer}");
    }

    // The laptop's loopback is its own: a listener bound inside answers a client inside,
    // and the node's 127.0.0.1 is another host.
    let local = laptop.bind_tcp("127.0.0.1:0").unwrap();
    let local_addr = local.local_addr().unwrap();
    let client = laptop
        .connect_tcp(local_addr, Duration::from_secs(5))
        .expect("a process inside reaches the laptop's own listener");
    let (mut accepted, _) = local.accept().unwrap();
    accepted.write_all(b"hi").unwrap();
    let mut greeting = [0u8; 2];
    (&client).read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"hi");
    // Whether something of the node's own listens on that port or not, the node's
    // connection does not arrive here.
    let from_node = TcpStream::connect_timeout(&local_addr, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(200));
    local.set_nonblocking(true).unwrap();
    assert!(
        matches!(local.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the node reached a listener inside the laptop"
    );
    drop(from_node);
}
