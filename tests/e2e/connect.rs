//! `tether connect` against the real cluster: cluster names through the loopback proxy and
//! DNS server, failures that say why at once, one session per laptop, and `uninstall`
//! leaving no connect object behind.

use std::{
    net::SocketAddr,
    process::{Command, Output},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, Query, ResponseCode},
    rr::{Name, RecordType},
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Pod, Service},
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
    runtime::wait::{await_condition, conditions},
};

use crate::{
    bench,
    intercept::web_image,
    process::Running,
    support::{POLICY, TestNamespace, cluster, laptop::Laptop},
};

/// The connect tests take turns: one session per laptop is the rule under test.
pub(crate) static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// `tether ARGS` run on the laptop (inside its namespace), with its own runtime folder.
pub(crate) fn tether_cmd(laptop: &Laptop, state: &std::path::Path, args: &[&str]) -> Command {
    let mut c = laptop.tether(std::path::Path::new("/"), args);
    c.env("XDG_RUNTIME_DIR", state);
    c
}

/// `tether connect -n NS` on the laptop, on ports of its own, once it says it is
/// connected: the session, its proxy's address and its DNS server's.
pub(crate) fn connected(
    laptop: &Laptop,
    state: &std::path::Path,
    ns: &str,
) -> (Running, String, SocketAddr) {
    let mut session = Running::spawn(tether_cmd(
        laptop,
        state,
        &[
            "connect",
            "-n",
            ns,
            "--proxy-port",
            "0",
            "--dns-port",
            "0",
            "-o",
            "json",
        ],
    ));
    let ready = session.wait_for(0, Duration::from_secs(180), "connect's ready line", |l| {
        l.starts_with('{') && l.contains("\"connected\":true")
    });
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let proxy = ready["proxy"].as_str().unwrap().to_owned();
    let dns = ready["dns"].as_str().unwrap().parse().unwrap();
    (session, proxy, dns)
}

pub(crate) fn run(mut c: Command) -> Output {
    let out = c.output().expect("runs");
    eprintln!(
        "$ {c:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The cluster side: busybox httpd behind `web-svc` (port 80), a pod `web-0` under the
/// headless Service `web-h`, and `idle-svc`, which selects no pod.
pub(crate) async fn deploy(client: &Client, ns: &str) -> String {
    let image = web_image(client, "hello from the cluster").await;
    let container = serde_json::json!({
        "name": "web", "image": image,
        "args": ["httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
        "env": [{"name": "GREETING", "value": "hello from web's env"}],
    });
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
            },
        },
    }))
    .unwrap();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-0", "labels": {"app": "web-h"}},
        "spec": {"hostname": "web-0", "subdomain": "web-h",
                 "terminationGracePeriodSeconds": 1, "containers": [container]},
    }))
    .unwrap();
    let services = [
        serde_json::json!({"metadata": {"name": "web-svc"}, "spec": {"selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": "http"}]}}),
        serde_json::json!({"metadata": {"name": "web-h"}, "spec": {"clusterIP": "None",
            "selector": {"app": "web-h"}, "ports": [{"port": 8080}]}}),
        serde_json::json!({"metadata": {"name": "idle-svc"}, "spec": {"selector": {"app": "nobody"},
            "ports": [{"port": 80, "targetPort": 8080}]}}),
    ];
    let pp = PostParams::default();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments.create(&pp, &deployment).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&pp, &pod).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let mut web_ip = String::new();
    for s in services {
        let created = svcs
            .create(&pp, &serde_json::from_value(s).unwrap())
            .await
            .unwrap();
        if created.metadata.name.as_deref() == Some("web-svc") {
            web_ip = created.spec.unwrap().cluster_ip.unwrap();
        }
    }
    let limit = Duration::from_secs(120);
    tokio::time::timeout(
        limit,
        await_condition(deployments, "web", conditions::is_deployment_completed()),
    )
    .await
    .expect("web rolled out")
    .unwrap();
    tokio::time::timeout(
        limit,
        await_condition(pods, "web-0", conditions::is_pod_running()),
    )
    .await
    .expect("web-0 runs")
    .unwrap();
    // Ready pods reach the Service's rules a moment later (kube-proxy): until then its
    // ClusterIP refuses. The node sees what the cluster sees, so ask from here.
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr: SocketAddr = format!("{web_ip}:80").parse().unwrap();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < deadline, "web-svc's rules never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cluster DNS learns of the headless pod a moment after it is ready, too.
    let pod = format!("web-0.web-h.{ns}.svc.cluster.local");
    while !Command::new("busybox")
        .args(["nslookup", &pod, "10.96.0.10"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Name:"))
    {
        assert!(Instant::now() < deadline, "cluster DNS never named {pod}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    web_ip
}

/// Asks `server` for `name`'s A records; the answer and how long it took.
fn query(server: SocketAddr, name: &str) -> (Message, Duration) {
    let mut q = Message::new();
    q.set_id(7)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    socket.send_to(&q.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).expect("the DNS server answers");
    (Message::from_vec(&buf[..n]).unwrap(), started.elapsed())
}

/// [`query`] from inside the laptop, where the DNS server listens.
fn laptop_query(laptop: &Laptop, server: SocketAddr, name: &str) -> (Message, Duration) {
    laptop.run(|| query(server, name))
}

fn curl(laptop: &Laptop, args: &[&str]) -> Output {
    let mut c = laptop.command("curl");
    c.args(["-sS", "--max-time", "10"]).args(args);
    run(c)
}

#[test]
fn cluster_names_through_the_proxy_and_dns_one_session_per_laptop_and_uninstall() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    // `uninstall` keeps namespace tether while it holds the cluster's policy, which the
    // policy tests write there: this test, which sees the namespace go, waits for them.
    let _policy = POLICY.lock().unwrap_or_else(|p| p.into_inner());
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let client = cluster.client.clone();
    let ns = rt.block_on(TestNamespace::create(&client, "connect"));
    let web_ip = rt.block_on(deploy(&client, &ns.name));
    let state = tempfile::tempdir().unwrap();
    let network_before = crate::run::laptop_network(&laptop);

    // A namespace that does not exist is bad input, and nothing is installed for it.
    let out = run(tether_cmd(
        &laptop,
        state.path(),
        &[
            "connect",
            "-n",
            "no-such-namespace",
            "--proxy-port",
            "0",
            "--dns-port",
            "0",
        ],
    ));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("there is no namespace `no-such-namespace`"),
        "{err}"
    );

    let (mut session, proxy, dns) = connected(&laptop, state.path(), &ns.name);

    // Through the SOCKS5 proxy, by every name a pod would use.
    let socks = format!("socks5h://{proxy}");
    let fq = format!("web-svc.{}.svc.cluster.local", ns.name);
    let pod = format!("web-0.web-h.{}:8080", ns.name);
    for name in ["web-svc", &format!("web-svc.{}", ns.name), &fq, &pod] {
        let out = curl(&laptop, &["--proxy", &socks, &format!("http://{name}/")]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from the cluster",
            "{name}"
        );
    }
    // Through the HTTP proxy: a plain request and a CONNECT tunnel.
    let http = format!("http://{proxy}");
    for extra in [&[][..], &["--proxytunnel"][..]] {
        let mut args = vec!["--proxy", &http];
        args.extend_from_slice(extra);
        let url = format!("http://web-svc.{}/", ns.name);
        args.push(&url);
        let out = curl(&laptop, &args);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from the cluster",
            "{extra:?}"
        );
    }
    // A Service with no ready endpoints is refused at once, and the status says why.
    let started = Instant::now();
    let out = curl(
        &laptop,
        &["--proxy", &socks, &format!("http://idle-svc.{}/", ns.name)],
    );
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused at once, not a timeout"
    );
    let status = run(tether_cmd(
        &laptop,
        state.path(),
        &["connect", "--status", "-o", "json"],
    ));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["namespace"], ns.name.as_str());
    assert!(
        status["agent"]
            .as_str()
            .is_some_and(|p| p.starts_with("tether-connect-")),
        "{status}"
    );
    assert!(status["connections"].as_u64().unwrap() >= 6, "{status}");
    assert!(status["bytes_in"].as_u64().unwrap() > 0, "{status}");
    assert!(
        status["last_failure"]
            .as_str()
            .is_some_and(|f| f.contains("refused")),
        "{status}"
    );

    // `tether status` shows the session too, also where no `up` runs.
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tether.toml"), "").unwrap();
    let mut c = tether_cmd(&laptop, state.path(), &["status", "-o", "json"]);
    c.current_dir(project.path());
    let shown = run(c);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap_or_default();
    assert_eq!(shown["connect"]["namespace"], ns.name.as_str(), "{shown}");

    // DNS: cluster names answer, a missing one is NXDOMAIN fast, the world's are refused.
    let (answer, _) = laptop_query(&laptop, dns, &format!("web-svc.{}.", ns.name));
    let ips: Vec<String> = answer
        .answers()
        .iter()
        .map(|r| r.data().to_string())
        .collect();
    assert_eq!(ips, [web_ip]);
    let (answer, took) = laptop_query(&laptop, dns, &format!("nope.{}.", ns.name));
    assert_eq!(answer.response_code(), ResponseCode::NXDomain);
    // Once the namespace's names were asked, the agent's negative answers come warm.
    let (_, again) = laptop_query(&laptop, dns, &format!("nope2.{}.", ns.name));
    assert!(
        again < Duration::from_millis(100) || took < Duration::from_millis(100),
        "{took:?} {again:?}"
    );
    let (answer, _) = laptop_query(&laptop, dns, "example.com.");
    assert_eq!(answer.response_code(), ResponseCode::Refused);

    // The agent's pod replaced (a node drained, a rollout): the link says so, reconnects
    // by itself, and clients are served again.
    let agent = status["agent"].as_str().unwrap().to_owned();
    let mark = session.mark();
    rt.block_on(async {
        Api::<Pod>::namespaced(client.clone(), "tether")
            .delete(&agent, &Default::default())
            .await
            .unwrap();
    });
    session.wait_for(mark, Duration::from_secs(120), "the reconnect", |l| {
        l.contains("connect: reconnected to tether-connect-")
    });
    let lost = session.since(mark);
    assert!(
        lost.iter()
            .any(|l| l.contains("the link to the cluster was lost")),
        "{lost:?}"
    );
    let out = curl(&laptop, &["--proxy", &socks, "http://web-svc/"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the cluster"
    );

    // One session per laptop: another namespace is refused with who holds it.
    let other = run(tether_cmd(
        &laptop,
        state.path(),
        &[
            "connect",
            "-n",
            "default",
            "--proxy-port",
            "0",
            "--dns-port",
            "0",
        ],
    ));
    assert_eq!(other.status.code(), Some(2));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains(&format!("namespace {}", ns.name)) && err.contains("pid"),
        "{err}"
    );

    // --quit ends it; the session file goes with it.
    let quit = run(tether_cmd(&laptop, state.path(), &["connect", "--quit"]));
    assert!(quit.status.success());
    assert!(
        session
            .exited_within(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(!state.path().join("tether/connect.json").exists());

    // SIGKILL leaves a file naming a dead pid; the next connect replaces it.
    let (mut killed, _, _) = connected(&laptop, state.path(), &ns.name);
    let _ = Command::new("kill")
        .args(["-KILL", &killed.pid().to_string()])
        .status();
    assert!(killed.exited_within(Duration::from_secs(5)).is_some());
    let status = run(tether_cmd(&laptop, state.path(), &["connect", "--status"]));
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        "not connected"
    );
    assert_eq!(
        crate::run::laptop_network(&laptop),
        network_before,
        "connect changed the laptop's routes, links or resolv.conf"
    );

    // uninstall leaves no connect object in the cluster.
    let out = run(tether_cmd(
        &laptop,
        state.path(),
        &["uninstall", "--connect"],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(async {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if let Some(uid) = namespaces
            .get_opt("tether")
            .await
            .unwrap()
            .and_then(|n| n.metadata.uid)
        {
            let gone = tokio::time::timeout(
                Duration::from_secs(120),
                await_condition(namespaces, "tether", conditions::is_deleted(&uid)),
            )
            .await;
            assert!(gone.is_ok(), "the tether namespace is deleted");
        }
        let left = Api::<Pod>::all(client.clone())
            .list(&ListParams::default().labels("app.kubernetes.io/name=tether-connect"))
            .await
            .unwrap();
        assert!(left.items.is_empty());
    });
}

/// Figures for `tether connect` (nothing is asserted; `scripts/bench-connect` runs it):
/// time to the first answered request, DNS lookup times, and HTTP latency and throughput
/// through the proxy against `kubectl port-forward` to the same pods.
#[test]
#[ignore = "a benchmark: scripts/bench-connect"]
fn bench_connect() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "bench-connect"));
    rt.block_on(deploy(&cluster.client, &ns.name));
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut session = Running::spawn(tether_cmd(
        &laptop,
        state.path(),
        &[
            "connect",
            "-n",
            &ns.name,
            "--proxy-port",
            "0",
            "--dns-port",
            "0",
            "-o",
            "json",
        ],
    ));
    let ready = session.wait_for(0, Duration::from_secs(180), "ready", |l| {
        l.contains("\"connected\":true")
    });
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let proxy = ready["proxy"].as_str().unwrap().to_owned();
    let dns: SocketAddr = ready["dns"].as_str().unwrap().parse().unwrap();
    let through_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("socks5h://{proxy}")).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://web-svc.{}/", ns.name);
    laptop.block_on(async {
        while through_proxy.get(&url).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let first = started.elapsed();

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..100 {
        cold.push(laptop_query(&laptop, dns, &format!("nope-{i}.{}.", ns.name)).1);
        warm.push(laptop_query(&laptop, dns, &format!("web-svc.{}.", ns.name)).1);
    }
    cold.sort();
    warm.sort();
    let via_proxy = laptop.run(|| bench::measure_with(through_proxy, &url));

    // The peer, from the same laptop: `kubectl port-forward` to the same pods.
    let kport = laptop
        .bind_tcp("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut kubectl = laptop
        .command("kubectl")
        .args([
            "-n",
            &ns.name,
            "port-forward",
            "deployment/web",
            &format!("{kport}:8080"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl is on PATH after `eval \"$(scripts/dev-cluster env)\"`");
    let kurl = format!("http://127.0.0.1:{kport}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    while laptop.block_on(reqwest::get(&kurl)).is_err() {
        assert!(
            Instant::now() < deadline,
            "kubectl port-forward never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let via_kubectl = laptop.run(|| bench::measure(&kurl));
    // curl, which knows no proxy here, through `tether run` by cluster name, and the same
    // curl through the kubectl forward.
    let curl_run = curl_figures(
        |script| {
            let mut c = tether_cmd(
                &laptop,
                state.path(),
                &["run", "-n", &ns.name, "--", "sh", "-c", script],
            );
            c.stdout(std::process::Stdio::piped());
            c
        },
        &url,
    );
    let curl_kubectl = curl_figures(
        |script| {
            let mut c = laptop.command("sh");
            c.args(["-c", script]);
            c
        },
        &kurl,
    );
    let _ = kubectl.kill();
    let _ = kubectl.wait();

    println!("\n== tether connect figures");
    println!(
        "time from `tether connect` to the first answered request: {:.2}s",
        first.as_secs_f64()
    );
    println!(
        "DNS over loopback: a cluster name (cached) p50 {:.2}ms p99 {:.2}ms; a missing one (asked of the cluster) p50 {:.2}ms p99 {:.2}ms",
        bench::quantile(&warm, 0.5).as_secs_f64() * 1e3,
        bench::quantile(&warm, 0.99).as_secs_f64() * 1e3,
        bench::quantile(&cold, 0.5).as_secs_f64() * 1e3,
        bench::quantile(&cold, 0.99).as_secs_f64() * 1e3,
    );
    bench::header();
    bench::row("laptop → SOCKS5 → agent → Service", &via_proxy);
    bench::row("laptop → kubectl port-forward → pod", &via_kubectl);
    println!(
        "ratios (connect / kubectl): p50 {:.2}, p99 {:.2}, throughput {:.2}",
        via_proxy.p50.as_secs_f64() / via_kubectl.p50.as_secs_f64(),
        via_proxy.p99.as_secs_f64() / via_kubectl.p99.as_secs_f64(),
        via_proxy.throughput / via_kubectl.throughput,
    );
    bench::row("curl in tether run → agent → Service", &curl_run);
    bench::row("curl → kubectl port-forward → pod", &curl_kubectl);
    println!(
        "ratios (run / kubectl): p50 {:.2}, p99 {:.2}, throughput {:.2}",
        curl_run.p50.as_secs_f64() / curl_kubectl.p50.as_secs_f64(),
        curl_run.p99.as_secs_f64() / curl_kubectl.p99.as_secs_f64(),
        curl_run.throughput / curl_kubectl.throughput,
    );
    assert!(session.interrupt());
}

/// One curl fetching `url` 300 times on one kept-alive connection (each transfer's time),
/// then 800 fetches 16 at a time (the wall time), in a shell made by `shell`.
fn curl_figures(shell: impl Fn(&str) -> Command, url: &str) -> bench::Measured {
    let many = |n: usize| vec![url; n].join(" ");
    let script = format!(
        "curl -s -w '\\n%{{time_total}}\\n' {}; s=$(date +%s%N); curl -s -Z --parallel-max 16 {} > /dev/null; e=$(date +%s%N); echo wall $((e - s))",
        many(300),
        many(800)
    );
    // Both shells are laptop commands already (`Laptop::command` enters the namespace).
    let out = shell(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut times: Vec<Duration> = text
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect();
    times.sort();
    let wall_ns: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("wall "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    bench::Measured {
        p50: bench::quantile(&times, 0.5),
        p99: bench::quantile(&times, 0.99),
        throughput: 800.0 / (wall_ns / 1e9),
    }
}
