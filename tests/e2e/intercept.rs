//! `tether intercept / leave / list / uninstall` against the real cluster: a small busybox
//! web Deployment of two replicas in a test namespace, a local HTTP server standing in for
//! the developer's process, and requests sent to the Service's cluster IP.
//!
//! Two sides, as on a real team: the laptop (the namespace of [`Laptop`]) runs every
//! `tether` command and the developer's process, and reaches the cluster only through its
//! API server and registry, so the tunnel has to get there by itself; the node plays a
//! caller in the cluster (kube-proxy routes its requests to the ClusterIP as it routes a
//! pod's) and checks the cluster's objects with its own client and `kubectl`.
//!
//! `bench_intercept` (ignored; `scripts/bench-intercept` runs it) prints figures.

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    process::Output,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use tether::{
    build::{Builder, HashCache, Registry},
    config::{Image, Location},
    deploy::{Workload, rollout},
};

use crate::{
    bench::{self, measure},
    process::{Running, output},
    support::{TestNamespace, cluster, eventually, free_port, laptop::Laptop},
};

/// The tests take turns: each rolls Deployments and the first builds the agent image.
static TURN: Mutex<()> = Mutex::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// The app in the cluster: busybox httpd serving `app` on `port`, two replicas.
struct Web {
    ns: TestNamespace,
    cluster_ip: String,
    port: u16,
    client: Client,
}

impl Web {
    async fn deploy(client: &Client, prefix: &str, port: u16) -> Web {
        let ns = TestNamespace::create(client, prefix).await;
        let image = web_image(client, "app").await;
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), &ns.name);
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-config"},
                "data": {"GREETING": "hello there", "LEVEL": "debug"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), &ns.name);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "web-secret"},
                    "stringData": {"password": "s3cret"}
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{
                            "name": "web",
                            "image": image,
                            "args": ["httpd", "-f", "-p", port.to_string(), "-h", "/www"],
                            "ports": [{"name": "http", "containerPort": port}],
                            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
                            "envFrom": [{"configMapRef": {"name": "web-config"}, "prefix": "CFG_"}],
                            "env": [
                                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "web-secret", "key": "password"}}},
                                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "URL", "value": "http://$(CFG_LEVEL).example"},
                            ],
                        }]
                    }
                }
            }
        }))
        .unwrap();
        Api::<Deployment>::namespaced(client.clone(), &ns.name)
            .create(&PostParams::default(), &deployment)
            .await
            .unwrap();
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-svc"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            }
        }))
        .unwrap();
        let svc = Api::<Service>::namespaced(client.clone(), &ns.name)
            .create(&PostParams::default(), &svc)
            .await
            .unwrap();
        let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
        let web = Web {
            ns,
            cluster_ip,
            port,
            client: client.clone(),
        };
        web.wait_rolled_out().await;
        // kube-proxy programs the Service shortly after the pods are ready.
        let url = web.url();
        eventually(Duration::from_secs(30), "the Service to answer", || {
            let url = url.clone();
            async move {
                tokio::task::spawn_blocking(move || get(&url, None).ok())
                    .await
                    .ok()
                    .flatten()
            }
        })
        .await;
        web
    }

    async fn wait_rolled_out(&self) {
        let w = Workload {
            kind: tether::kube::WorkloadKind::Deployment,
            namespace: self.ns.name.clone(),
            name: "web".into(),
            selector: [("app".to_owned(), "web".to_owned())].into(),
        };
        eventually(Duration::from_secs(180), "web to roll out", || async {
            rollout::rolled_out(&self.client, &w)
                .await
                .ok()
                .filter(|r| *r)
        })
        .await;
    }

    /// The specs (and annotations) of the Service and Deployment, as JSON.
    async fn specs(&self) -> serde_json::Value {
        let s = Api::<Service>::namespaced(self.client.clone(), &self.ns.name)
            .get("web-svc")
            .await
            .unwrap();
        let d = Api::<Deployment>::namespaced(self.client.clone(), &self.ns.name)
            .get("web")
            .await
            .unwrap();
        serde_json::json!({
            "service": s.spec,
            "service_annotations": s.metadata.annotations,
            "deployment": d.spec,
            "deployment_annotations": d.metadata.annotations.map(|mut a| {
                // The controller's own bookkeeping, not part of what tether restores.
                a.remove("deployment.kubernetes.io/revision");
                a
            }),
        })
    }

    fn url(&self) -> String {
        format!("http://{}/", self.cluster_ip)
    }

    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["-n".to_owned(), self.ns.name.clone()]);
        v
    }
}

/// A busybox httpd image serving `body` at `/`, pushed to the cluster's registry.
pub(crate) async fn web_image(client: &Client, body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\nENTRYPOINT [\"/bin/busybox\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("index.html"), body).unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox"))
        .expect("busybox-static is installed by scripts/dev-cluster");
    let image = Image {
        name: "tether-it-web".into(),
        context: dir.path().to_path_buf(),
        dockerfile: dir.path().join("Dockerfile"),
        host_build: None,
        inputs: vec![dir.path().to_path_buf()],
        live_update: None,
        declared_at: Location {
            file: dir.path().join("tether.toml"),
            line: 1,
            col: 1,
        },
    };
    let registry = Registry::resolve(None, client).await.unwrap();
    Builder::new(registry)
        .ensure(&image, &mut HashCache::default(), false, |_| {})
        .await
        .unwrap()
        .reference
}

/// The developer's process on the laptop: answers every request with `laptop`.
struct LocalServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl LocalServer {
    fn start(laptop: &Laptop) -> LocalServer {
        LocalServer::answering(laptop, |_| "laptop".to_owned())
    }

    /// A developer's process whose answer to each path is `answer`'s, listening on the
    /// laptop's loopback (served from a thread of the test: the socket stays inside).
    fn answering(laptop: &Laptop, answer: fn(&str) -> String) -> LocalServer {
        let listener = laptop.bind_tcp("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while !s.load(Ordering::SeqCst) {
                    let Ok(Ok((conn, _))) =
                        tokio::time::timeout(Duration::from_millis(200), listener.accept()).await
                    else {
                        continue;
                    };
                    tokio::spawn(serve_http(conn, answer));
                }
            });
        });
        LocalServer { port, stop }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A minimal HTTP/1.1 responder: reads a request head, answers 200 with the body
/// `answer` gives for the request's path, keeps alive.
async fn serve_http(mut conn: tokio::net::TcpStream, answer: fn(&str) -> String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let body = answer(head.split_whitespace().nth(1).unwrap_or(""));
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(resp.as_bytes()).await.is_err()
            || head.to_ascii_lowercase().contains("connection: close")
        {
            return;
        }
    }
}

/// One GET on a fresh connection (so kube-proxy picks a pod each time), over plain
/// std sockets so it can run on any thread. The trimmed body of a 200, or the status line.
fn get(url: &str, header: Option<(&str, &str)>) -> Result<String, String> {
    request(url, "/", header, Duration::from_secs(2)).map(|b| b.trim().to_owned())
}

/// GET `path` from `url` on a fresh connection; the body of a 200 as sent, or the status
/// line. `timeout` bounds the connect and each read.
fn request(
    url: &str,
    path: &str,
    header: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<String, String> {
    use std::io::{Read, Write};
    let hostport = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let addr: SocketAddr = if hostport.contains(':') {
        hostport.parse().map_err(|e| format!("{e}"))?
    } else {
        format!("{hostport}:80")
            .parse()
            .map_err(|e| format!("{e}"))?
    };
    let mut conn =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout)).unwrap();
    let extra = header
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .unwrap_or_default();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n{extra}\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no response head")?;
    if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
        Ok(body.to_owned())
    } else {
        Err(head.lines().next().unwrap_or("").to_owned())
    }
}

/// When a request finished, and what it got.
type Outcome = (Instant, Result<String, String>);

/// A port nothing listens on on the laptop's loopback.
fn laptop_free_port(laptop: &Laptop) -> u16 {
    laptop
        .bind_tcp("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tether ARGS` on the laptop, run to completion.
fn tether(laptop: &Laptop, args: &[&str]) -> Output {
    output(laptop.tether(&std::env::temp_dir(), args))
}

/// `tether ARGS` on the laptop, left running, its output collected.
fn spawn(laptop: &Laptop, args: &[&str]) -> Running {
    Running::spawn(laptop.tether(&std::env::temp_dir(), args))
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn start_intercept(laptop: &Laptop, web: &Web, extra: &[&str]) -> (Running, Duration) {
    let port = web.port.to_string();
    let mut args = vec!["intercept", "web-svc", "--port", port.as_str()];
    args.extend_from_slice(extra);
    let args = web.args(&args);
    let started = Instant::now();
    let mut running = spawn(laptop, &as_strs(&args));
    running.wait_for(
        0,
        Duration::from_secs(900),
        "the intercept to be ready",
        |l| l.starts_with("ready: "),
    );
    (running, started.elapsed())
}

#[test]
fn all_traffic_reaches_the_local_process_and_ctrl_c_restores_exactly() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-icpt", local.port));
    let before = rt.block_on(web.specs());
    eventually_app(&web);

    let env_file = tempfile::tempdir().unwrap();
    let env_path = env_file.path().join("web.env");
    let (mut running, took) =
        start_intercept(&laptop, &web, &["--env-file", env_path.to_str().unwrap()]);
    eprintln!("intercept ready after {took:?}");
    let first = eventually_laptop(&web);
    eprintln!("first request routed to the laptop {first:?} after `ready:`");
    // Both replicas carry traffic to the laptop: every request lands there.
    for i in 0..40 {
        assert_eq!(get(&web.url(), None).unwrap(), "laptop", "request {i}");
    }
    let env = std::fs::read_to_string(&env_path).unwrap();
    for line in [
        "CFG_GREETING=\"hello there\"",
        "CFG_LEVEL=debug",
        "DB_PASSWORD=s3cret",
        "URL=http://debug.example",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }
    assert!(env.lines().any(|l| l.starts_with("POD=web-")), "{env}");
    let mode = std::fs::metadata(&env_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let out = tether(&laptop, &as_strs(&web.args(&["list"])));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let row = text
        .lines()
        .find(|l| l.starts_with("web-svc"))
        .unwrap_or("");
    assert!(
        row.contains("80→http") && row.contains("Deployment/web") && row.contains("port 80"),
        "{text}"
    );

    assert!(running.interrupt(), "tether intercept ends on Ctrl-C");
    assert_eq!(
        rt.block_on(web.specs()),
        before,
        "Ctrl-C restores both specs exactly"
    );
    rt.block_on(web.wait_rolled_out());
    eventually_app(&web);
}

/// kube-proxy follows a Service change within about a second; the first request that
/// reaches the laptop marks it.
fn eventually_laptop(web: &Web) -> Duration {
    let started = Instant::now();
    while get(&web.url(), None).as_deref() != Ok("laptop") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the Service never led to the laptop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn eventually_app(web: &Web) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&web.url(), None).as_deref() != Ok("app") {
        assert!(Instant::now() < deadline, "the app never answered again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_header_intercept_routes_only_marked_requests_and_leave_restores_exactly() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-hdr", local.port));
    let before = rt.block_on(web.specs());
    let (running, _) = start_intercept(&laptop, &web, &["--header", "x-dev=alice"]);
    let started = Instant::now();
    while get(&web.url(), Some(("X-Dev", "alice"))).as_deref() != Ok("laptop") {
        assert!(started.elapsed() < Duration::from_secs(10), "never routed");
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..20 {
        assert_eq!(
            get(&web.url(), Some(("X-Dev", "alice"))).unwrap(),
            "laptop",
            "request {i} with the header"
        );
        assert_eq!(get(&web.url(), None).unwrap(), "app", "request {i} without");
        assert_eq!(
            get(&web.url(), Some(("X-Dev", "bob"))).unwrap(),
            "app",
            "request {i} with another value"
        );
    }
    drop(running); // SIGKILL: the agent stays, `leave` restores.
    let out = tether(&laptop, &as_strs(&web.args(&["leave", "web-svc"])));
    assert!(out.status.success(), "leave failed");
    assert_eq!(
        rt.block_on(web.specs()),
        before,
        "leave restores both specs exactly"
    );
    let out = tether(&laptop, &as_strs(&web.args(&["leave", "web-svc"])));
    assert_eq!(out.status.code(), Some(2), "leaving twice is bad input");
}

#[test]
fn a_killed_laptop_falls_back_within_a_second_resumes_fast_and_uninstall_restores() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-kill", local.port));
    let before = rt.block_on(web.specs());
    let (running, first) = start_intercept(&laptop, &web, &[]);
    eventually_laptop(&web);

    // A request loop, as callers in the cluster keep calling.
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (results, stop, url) = (results.clone(), stop.clone(), web.url());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = get(&url, None);
                results.lock().unwrap().push((Instant::now(), r));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    drop(running); // SIGKILL
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    looper.join().unwrap();
    let results = results.lock().unwrap();
    let before_kill: Vec<_> = results.iter().filter(|(t, _)| *t < killed).collect();
    assert!(
        before_kill
            .iter()
            .all(|(_, r)| r.as_deref() == Ok("laptop")),
        "before the kill every request reached the laptop: {before_kill:?}"
    );
    let first_app = results
        .iter()
        .find(|(t, r)| *t > killed && r.as_deref() == Ok("app"))
        .map(|(t, _)| t.duration_since(killed))
        .expect("the app answers after the kill");
    let failed_after_window: Vec<_> = results
        .iter()
        .filter(|(t, r)| {
            t.duration_since(killed) > Duration::from_secs(1)
                && *t > killed
                && r.as_deref() != Ok("app")
        })
        .collect();
    eprintln!(
        "first intercept ready after {first:?}; after SIGKILL the app answered after {first_app:?}"
    );
    assert!(
        failed_after_window.is_empty(),
        "requests failed or went elsewhere more than 1 s after the kill: {failed_after_window:?}"
    );
    drop(results);

    // The laptop returns: the agent is still there, no rollout needed.
    let (running, again) = start_intercept(&laptop, &web, &[]);
    eprintln!("resumed on the installed agent after {again:?}");
    assert_eq!(get(&web.url(), None).unwrap(), "laptop");
    drop(running);

    // Only this test's namespace: other tests' intercepts run on the same cluster.
    let out = tether(&laptop, &as_strs(&web.args(&["uninstall"])));
    assert!(out.status.success(), "uninstall failed");
    assert_eq!(
        rt.block_on(web.specs()),
        before,
        "uninstall restores both specs exactly"
    );
}

#[test]
fn bad_input_changes_nothing() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // The container's port, and one that nothing listens on on the laptop.
    let port = laptop_free_port(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-bad", port));
    let before = rt.block_on(web.specs());
    let p = port.to_string();
    let remote_1 = format!("{port}:1");
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["intercept", "nope-svc", "--port", &p],
            "no Service `nope-svc`",
        ),
        (
            vec!["intercept", "web-svc", "--port", &remote_1],
            "does not serve port 1",
        ),
        // Nothing listens on `port` on the laptop.
        (
            vec!["intercept", "web-svc", "--port", &p],
            "nothing listens on 127.0.0.1",
        ),
        (
            vec!["intercept", "web-svc", "--port", &p, "--header", "bad"],
            "bad --header",
        ),
    ];
    for (args, says) in cases {
        let out = tether(&laptop, &as_strs(&web.args(&args)));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
        assert_eq!(
            rt.block_on(web.specs()),
            before,
            "{args:?} changed the cluster"
        );
    }
    assert!(
        rt.block_on(
            Api::<k8s_openapi::api::core::v1::Pod>::namespaced(web.client.clone(), &web.ns.name)
                .list(&ListParams::default())
        )
        .unwrap()
        .items
        .iter()
        .all(|p| p.spec.as_ref().unwrap().containers.len() == 1),
        "no pod got an agent"
    );
}

/// Figures, no assertions on time: `scripts/bench-intercept`.
#[test]
#[ignore]
fn bench_intercept() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-bench", local.port));

    let first_routed = |running_since: Instant| {
        let deadline = running_since + Duration::from_secs(900);
        loop {
            if get(&web.url(), None).as_deref() == Ok("laptop") {
                return running_since.elapsed();
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let port = web.port.to_string();
    let args = web.args(&["intercept", "web-svc", "--port", &port]);
    let t = Instant::now();
    let running = spawn(&laptop, &as_strs(&args));
    let fresh = first_routed(t);
    drop(running);
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let running = spawn(&laptop, &as_strs(&args));
    let present = first_routed(t);

    let through_intercept = measure(&web.url());
    drop(running);
    let _ = tether(&laptop, &as_strs(&web.args(&["leave", "web-svc"])));
    rt.block_on(web.wait_rolled_out());

    // The same requests to one app pod through `kubectl port-forward`, from the laptop.
    let kport = laptop_free_port(&laptop);
    let mut kubectl = laptop
        .command("kubectl")
        .args(["-n", &web.ns.name, "port-forward", "deployment/web"])
        .arg(format!("{kport}:{}", web.port))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl is on PATH after `eval \"$(scripts/dev-cluster env)\"`");
    let url = format!("http://127.0.0.1:{kport}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    while laptop.run(|| get(&url, None)).is_err() {
        assert!(
            Instant::now() < deadline,
            "kubectl port-forward never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let through_kubectl = laptop.run(|| measure(&url));
    let _ = kubectl.kill();
    let _ = kubectl.wait();

    println!("\n== tether intercept figures");
    println!("time from `tether intercept` to the first routed request:");
    println!(
        "  first time (agent image push + rollout): {:.2}s",
        fresh.as_secs_f64()
    );
    println!(
        "  agent already installed:                 {:.2}s",
        present.as_secs_f64()
    );
    bench::header();
    bench::row("cluster IP → agent → tunnel → laptop", &through_intercept);
    bench::row("laptop → kubectl port-forward → pod", &through_kubectl);
}

/// The body the echoing process answers to `path`: the path itself, padded so bodies
/// differ in length too. Each response can be checked against its request.
fn echo_body(path: &str) -> String {
    format!("laptop {path} {}", "x".repeat(path.len() * 7))
}

/// One GET of `path` through the Service, with room for a loaded machine.
fn get_path(web: &Web, path: &str) -> Result<String, String> {
    request(&web.url(), path, None, Duration::from_secs(10))
}

#[test]
fn ten_thousand_requests_at_fifty_connections_through_an_intercept_none_lost_or_corrupted() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // The developer's process on the laptop: echoes each request's path.
    let listener = laptop.bind_tcp("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve_http(conn, echo_body));
            }
        });
    });
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-load", port));
    eventually_app(&web);
    let (mut running, _) = start_intercept(&laptop, &web, &[]);
    let started = Instant::now();
    while get_path(&web, "/probe").map(|b| b.starts_with("laptop /probe")) != Ok(true) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the Service never led here"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    const CONNECTIONS: usize = 50;
    const REQUESTS: usize = 10_000;
    let t = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|w| {
                let web = &web;
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for i in (w..REQUESTS).step_by(CONNECTIONS) {
                        let path = format!("/req-{i}");
                        let want = echo_body(&path);
                        match get_path(web, &path) {
                            Ok(body) if body == want => {}
                            Ok(body) => failed.push(format!("{path}: corrupted body {body:?}")),
                            Err(e) => failed.push(format!("{path}: {e}")),
                        }
                    }
                    failed
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    eprintln!(
        "{REQUESTS} requests at {CONNECTIONS} connections through the intercept in {:?}",
        t.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(running.interrupt());
}

/// `kubectl -n NS ARGS`, as someone else on the team changes the Deployment.
fn kubectl(web: &Web, args: &[&str]) {
    let out = std::process::Command::new("kubectl")
        .args(["-n", &web.ns.name])
        .args(args)
        .output()
        .expect("kubectl is on PATH after `eval \"$(scripts/dev-cluster env)\"`");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn leave_keeps_what_others_changed_during_the_intercept_and_the_attach_secret_goes() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-keep", local.port));
    let before = rt.block_on(web.specs());
    let v2 = rt.block_on(web_image(&cluster.client, "app v2"));
    let (mut running, _) = start_intercept(&laptop, &web, &[]);
    eventually_laptop(&web);

    // The agent proves itself with a token from a Secret of tether's, never a value in
    // the spec or an annotation.
    let deployments: Api<Deployment> = Api::namespaced(web.client.clone(), &web.ns.name);
    let d = rt.block_on(deployments.get("web")).unwrap();
    let pod = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let agent = pod
        .containers
        .iter()
        .find(|c| c.name == "tether-agent")
        .expect("the agent container");
    let token_env = agent
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "TETHER_AGENT_TOKEN")
        .expect("the agent gets its token from the environment");
    assert_eq!(token_env.value, None, "the token is not in the spec");
    let key_ref = token_env
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("a secretKeyRef");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(web.client.clone(), &web.ns.name);
    let secret = rt.block_on(secrets.get(&key_ref.name)).unwrap();
    assert_eq!(
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .map(String::as_str),
        Some("tether")
    );
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&key_ref.key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    assert!(token.len() >= 32, "a random token: {token:?}");
    let svc = rt
        .block_on(Api::<Service>::namespaced(web.client.clone(), &web.ns.name).get("web-svc"))
        .unwrap();
    let everything = format!(
        "{}{}",
        serde_json::to_string(&d).unwrap(),
        serde_json::to_string(&svc).unwrap()
    );
    assert!(!everything.contains(&token), "the token leaked into a spec");
    let limits = agent.resources.as_ref().and_then(|r| r.limits.as_ref());
    assert!(
        limits.is_some_and(|l| l.contains_key("memory")),
        "the agent has a memory limit: {:?}",
        agent.resources
    );

    // Someone else changes the Deployment while the intercept runs.
    kubectl(
        &web,
        &["set", "image", "deployment/web", &format!("web={v2}")],
    );
    kubectl(&web, &["scale", "deployment/web", "--replicas=3"]);
    kubectl(
        &web,
        &["set", "env", "deployment/web", "-c", "web", "EXTRA=kept"],
    );
    rt.block_on(web.wait_rolled_out());

    assert!(running.interrupt(), "tether intercept ends on Ctrl-C");
    let mut want = before.clone();
    want["deployment"]["replicas"] = serde_json::json!(3);
    let web_container = &mut want["deployment"]["template"]["spec"]["containers"][0];
    web_container["image"] = serde_json::json!(v2);
    web_container["env"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "EXTRA", "value": "kept"}));
    assert_eq!(
        rt.block_on(web.specs()),
        want,
        "only tether's changes are undone"
    );
    assert!(
        rt.block_on(secrets.get_opt(&key_ref.name))
            .unwrap()
            .is_none(),
        "the attach Secret is deleted once nothing uses it"
    );
    rt.block_on(web.wait_rolled_out());
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&web.url(), None).as_deref() != Ok("app v2") {
        assert!(Instant::now() < deadline, "the new image never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_intercept_ended_elsewhere_says_so_and_exits_without_restoring_again() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-gone", local.port));
    let before = rt.block_on(web.specs());

    // `tether leave` in another terminal.
    let (mut running, _) = start_intercept(&laptop, &web, &[]);
    let mark = running.mark();
    let out = tether(
        &laptop,
        &as_strs(&web.args(&["leave", "web-svc", "-o", "json"])),
    );
    assert!(out.status.success(), "leave failed");
    let left = Instant::now();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["service"], "web-svc");
    assert_eq!(report["restored_service"], true);
    assert_eq!(report["restored_deployments"], serde_json::json!(["web"]));
    let status = running
        .exited_within(Duration::from_secs(5))
        .expect("tether intercept exits once its intercept is ended elsewhere");
    let took = left.elapsed();
    eprintln!("the running intercept exited {took:?} after `leave` returned");
    assert!(took < Duration::from_secs(3), "it took {took:?}");
    assert_eq!(
        status.code(),
        Some(1),
        "an intercept ended elsewhere exits 1"
    );
    let lines = running.since(mark);
    assert!(
        lines.iter().any(|l| l.contains("ended elsewhere")),
        "it says so: {lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("leaving:") || l.starts_with("restored:")),
        "it does not restore again: {lines:?}"
    );
    assert_eq!(rt.block_on(web.specs()), before);
    rt.block_on(web.wait_rolled_out());

    // Someone removes the agent container by hand.
    let (mut running, _) = start_intercept(&laptop, &web, &[]);
    let mark = running.mark();
    kubectl(
        &web,
        &[
            "patch",
            "deployment/web",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/template/spec/containers/1/name","value":"tether-agent"},{"op":"remove","path":"/spec/template/spec/containers/1"}]"#,
        ],
    );
    let status = running
        .exited_within(Duration::from_secs(5))
        .expect("tether intercept exits once its agent is removed");
    assert_eq!(status.code(), Some(1));
    let lines = running.since(mark);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ended elsewhere") && l.contains("agent")),
        "it says the agent went: {lines:?}"
    );
    // The Service still leads to the gone agent: `leave` puts it back.
    let out = tether(&laptop, &as_strs(&web.args(&["leave", "web-svc"])));
    assert!(out.status.success(), "leave failed");
    assert_eq!(rt.block_on(web.specs()), before);
}

#[test]
fn a_local_port_unlike_the_containers_is_intercepted_and_reported_as_json() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let container_port = loop {
        let p = free_port();
        if p != local.port {
            break p;
        }
    };
    let web = rt.block_on(Web::deploy(
        &cluster.client,
        "tether-it-port",
        container_port,
    ));
    let before = rt.block_on(web.specs());
    let mapping = format!("{}:http", local.port);
    let args = web.args(&["intercept", "web-svc", "-p", &mapping, "-o", "json"]);
    let mut running = spawn(&laptop, &as_strs(&args));
    let line = running.wait_for(0, Duration::from_secs(900), "the ready line", |l| {
        l.starts_with('{') && l.contains("\"ready\"")
    });
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["service"], "web-svc");
    assert_eq!(ready["namespace"], web.ns.name.as_str());
    assert_eq!(ready["service_port"], 80);
    assert_eq!(ready["app_port"], container_port);
    assert!(
        ready["local"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!(":{}", local.port))),
        "{ready}"
    );
    eventually_laptop(&web);
    for i in 0..10 {
        assert_eq!(get(&web.url(), None).unwrap(), "laptop", "request {i}");
    }

    let out = tether(&laptop, &["list", "-A", "-o", "json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["namespace"] == web.ns.name.as_str() && r["service"] == "web-svc")
        .unwrap_or_else(|| panic!("web-svc of {} missing from {rows}", web.ns.name));
    assert_eq!(row["workload"], "Deployment/web");
    assert_eq!(row["intercepted_port"], 80, "{row}");

    assert!(running.interrupt(), "tether intercept ends on Ctrl-C");
    assert_eq!(rt.block_on(web.specs()), before);
}

#[test]
fn ending_alice_keeps_bob_routing_and_the_last_one_out_restores() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let alice = LocalServer::answering(&laptop, |_| "alice".to_owned());
    let bob = LocalServer::answering(&laptop, |_| "bob".to_owned());
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-two", free_port()));
    let before = rt.block_on(web.specs());
    let start = |server: &LocalServer, who: &str| {
        let port = server.port.to_string();
        let header = format!("x-dev={who}");
        let args = web.args(&["intercept", "web-svc", "-p", &port, "--header", &header]);
        let mut running = spawn(&laptop, &as_strs(&args));
        running.wait_for(0, Duration::from_secs(900), "ready", |l| {
            l.starts_with("ready: ")
        });
        running
    };
    let mut a = start(&alice, "alice");
    let mut b = start(&bob, "bob");
    let routed = |who: &'static str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(&web.url(), Some(("X-Dev", who))).as_deref() != Ok(who) {
            assert!(
                Instant::now() < deadline,
                "{who}'s requests never reached {who}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    routed("alice");
    routed("bob");
    for i in 0..20 {
        assert_eq!(
            get(&web.url(), Some(("X-Dev", "alice"))).unwrap(),
            "alice",
            "{i}"
        );
        assert_eq!(
            get(&web.url(), Some(("X-Dev", "bob"))).unwrap(),
            "bob",
            "{i}"
        );
        assert_eq!(get(&web.url(), None).unwrap(), "app", "{i}");
    }
    let mark = a.mark();
    assert!(a.interrupt(), "alice's intercept ends on Ctrl-C");
    let lines = a.since(mark);
    assert!(
        lines.iter().any(|l| l.contains("still attached")),
        "alice is told bob stays: {lines:?}"
    );
    for i in 0..20 {
        assert_eq!(
            get(&web.url(), Some(("X-Dev", "bob"))).unwrap(),
            "bob",
            "bob keeps routing after alice left ({i})"
        );
        assert_eq!(get(&web.url(), None).unwrap(), "app", "{i}");
    }
    assert!(b.interrupt(), "bob's intercept ends on Ctrl-C");
    assert_eq!(
        rt.block_on(web.specs()),
        before,
        "the last one out restores"
    );
}

#[test]
fn a_second_all_traffic_laptop_is_refused_and_says_who_holds_it() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let web = rt.block_on(Web::deploy(&cluster.client, "tether-it-second", local.port));
    let (_first, _) = start_intercept(&laptop, &web, &[]);
    eventually_laptop(&web);
    let port = local.port.to_string();
    let args = web.args(&["intercept", "web-svc", "-p", &port]);
    let mut second = spawn(&laptop, &as_strs(&args));
    let status = second
        .exited_within(Duration::from_secs(60))
        .expect("the second laptop gives up");
    assert_eq!(status.code(), Some(1));
    let lines = second.since(0);
    assert!(
        lines.iter().any(|l| l.contains("refused")),
        "it prints the agent's reason: {lines:?}"
    );
    for i in 0..10 {
        assert_eq!(
            get(&web.url(), None).unwrap(),
            "laptop",
            "the first keeps it ({i})"
        );
    }
}

#[test]
fn an_unusual_template_is_intercepted_and_restored_exactly_or_refused_up_front() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let local = LocalServer::start(&laptop);
    let client = cluster.client.clone();
    let ns = rt.block_on(TestNamespace::create(&client, "tether-it-odd"));
    let image = rt.block_on(web_image(&client, "app"));
    let (port, side) = (free_port(), free_port());
    // A selector of matchExpressions only, an init container, a native sidecar, a big
    // annotation; two Services on it, one of several ports with named targetPorts.
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "annotations": {"big": "x".repeat(100 * 1024)}},
        "spec": {
            "replicas": 1,
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "initContainers": [
                        {"name": "prepare", "image": image, "args": ["true"]},
                        {"name": "sidecar", "image": image, "restartPolicy": "Always",
                         "args": ["httpd", "-f", "-p", side.to_string(), "-h", "/www"],
                         "ports": [{"name": "side", "containerPort": side}]},
                    ],
                    "containers": [{
                        "name": "web", "image": image,
                        "args": ["httpd", "-f", "-p", port.to_string(), "-h", "/www"],
                        "ports": [{"name": "http", "containerPort": port}],
                        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    rt.block_on(deployments.create(&PostParams::default(), &deployment))
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let svc = |name: &str, ports: serde_json::Value| -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ports": ports},
        }))
        .unwrap()
    };
    let created = rt
        .block_on(services.create(
            &PostParams::default(),
            &svc(
                "web-svc",
                serde_json::json!([
                    {"name": "side", "port": 8080, "targetPort": "side"},
                    {"name": "web", "port": 80, "targetPort": "http"},
                ]),
            ),
        ))
        .unwrap();
    rt.block_on(services.create(
        &PostParams::default(),
        &svc(
            "web-admin",
            serde_json::json!([{"port": 80, "targetPort": "http"}]),
        ),
    ))
    .unwrap();
    let web = Web {
        cluster_ip: created.spec.unwrap().cluster_ip.unwrap(),
        ns,
        port,
        client: client.clone(),
    };
    rt.block_on(web.wait_rolled_out());
    eventually_app(&web);
    let side_url = format!("http://{}:8080/", web.cluster_ip);
    let before = rt.block_on(web.specs());
    let admin_before = rt.block_on(services.get("web-admin")).unwrap().spec;
    let lp = local.port.to_string();

    // Several ports and no REMOTE: refused, naming them.
    let out = tether(
        &laptop,
        &as_strs(&web.args(&["intercept", "web-svc", "-p", &lp])),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has several ports: side, web"));

    let mapping = format!("{lp}:web");
    let mut running = spawn(
        &laptop,
        &as_strs(&web.args(&["intercept", "web-svc", "-p", &mapping])),
    );
    running.wait_for(0, Duration::from_secs(900), "ready", |l| {
        l.starts_with("ready: ")
    });
    eventually_laptop(&web);
    assert_eq!(
        get(&side_url, None).unwrap(),
        "app",
        "the other port is untouched"
    );

    // The second Service on the same Deployment is refused up front.
    let out = tether(
        &laptop,
        &as_strs(&web.args(&["intercept", "web-admin", "-p", &lp])),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("already carries tether's agent for Service `web-svc`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(running.interrupt(), "tether intercept ends on Ctrl-C");
    assert_eq!(rt.block_on(web.specs()), before, "restored exactly");
    assert_eq!(
        rt.block_on(services.get("web-admin")).unwrap().spec,
        admin_before
    );
    rt.block_on(web.wait_rolled_out());

    // Annotations so near the limit that tether's record would not fit: refused, and
    // nothing changed (no half-install).
    let revision = "deployment.kubernetes.io/revision".len() + 4;
    let fits = 256 * 1024 - "big".len() - revision - 10;
    rt.block_on(deployments.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {"big": "y".repeat(fits)}}
        })),
    ))
    .unwrap();
    let before = rt.block_on(web.specs());
    let out = tether(
        &laptop,
        &as_strs(&web.args(&["intercept", "web-svc", "-p", &mapping])),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over Kubernetes' limit"));
    assert_eq!(rt.block_on(web.specs()), before, "nothing was changed");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &web.ns.name);
    assert!(
        rt.block_on(secrets.get_opt("tether-attach-web"))
            .unwrap()
            .is_none(),
        "not even the attach Secret"
    );
}

/// GETs `url` until it answers `want`, for up to 10 s (kube-proxy follows a Service change
/// within about a second).
fn eventually_answers(url: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get(url, None) {
            Ok(body) if body == want => return,
            got => assert!(
                Instant::now() < deadline,
                "{url} never answered {want:?}; last {got:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_ports_of_one_service_reach_two_local_processes_and_ctrl_c_restores_both() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let web_local = LocalServer::answering(&laptop, |_| "laptop web".to_owned());
    let admin_local = LocalServer::answering(&laptop, |_| "laptop admin".to_owned());
    let client = cluster.client.clone();
    let ns = rt.block_on(TestNamespace::create(&client, "tether-it-ports"));
    let image = rt.block_on(web_image(&client, "app"));
    let (port, admin) = (free_port(), free_port());
    // Two containers, each serving one of the Service's two ports.
    let httpd = |name: &str, port_name: &str, port: u16| {
        serde_json::json!({
            "name": name, "image": image,
            "args": ["httpd", "-f", "-p", port.to_string(), "-h", "/www"],
            "ports": [{"name": port_name, "containerPort": port}],
            "readinessProbe": {"tcpSocket": {"port": port_name}, "periodSeconds": 1},
        })
    };
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [httpd("web", "http", port), httpd("admin", "admin", admin)],
                },
            },
        },
    }))
    .unwrap();
    rt.block_on(
        Api::<Deployment>::namespaced(client.clone(), &ns.name)
            .create(&PostParams::default(), &deployment),
    )
    .unwrap();
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-svc"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "web", "port": 80, "targetPort": "http"},
                {"name": "admin", "port": 8080, "targetPort": "admin"},
            ],
        },
    }))
    .unwrap();
    let created = rt
        .block_on(
            Api::<Service>::namespaced(client.clone(), &ns.name)
                .create(&PostParams::default(), &svc),
        )
        .unwrap();
    let web = Web {
        cluster_ip: created.spec.unwrap().cluster_ip.unwrap(),
        ns,
        port,
        client: client.clone(),
    };
    rt.block_on(web.wait_rolled_out());
    let (web_url, admin_url) = (web.url(), format!("http://{}:8080/", web.cluster_ip));
    eventually_answers(&web_url, "app");
    eventually_answers(&admin_url, "app");
    let before = rt.block_on(web.specs());

    let (web_map, admin_map) = (
        format!("{}:web", web_local.port),
        format!("{}:8080", admin_local.port),
    );
    let args = web.args(&[
        "intercept",
        "web-svc",
        "-p",
        &web_map,
        "--port",
        &admin_map,
        "-o",
        "json",
    ]);
    let mut running = spawn(&laptop, &as_strs(&args));
    let line = running.wait_for(0, Duration::from_secs(900), "the ready line", |l| {
        l.starts_with('{') && l.contains("\"ready\"")
    });
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let ports: Vec<(i64, String, i64)> = ready["ports"]
        .as_array()
        .unwrap_or_else(|| panic!("no ports in {ready}"))
        .iter()
        .map(|p| {
            (
                p["service_port"].as_i64().unwrap_or(0),
                p["container"].as_str().unwrap_or("").to_owned(),
                p["app_port"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (80, "web".to_owned(), i64::from(port)),
            (8080, "admin".to_owned(), i64::from(admin))
        ],
        "{ready}"
    );
    eventually_answers(&web_url, "laptop web");
    eventually_answers(&admin_url, "laptop admin");
    for i in 0..10 {
        assert_eq!(get(&web_url, None).unwrap(), "laptop web", "request {i}");
        assert_eq!(
            get(&admin_url, None).unwrap(),
            "laptop admin",
            "request {i}"
        );
    }
    let out = tether(&laptop, &as_strs(&web.args(&["list", "-o", "json"])));
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows[0]["intercepted_ports"],
        serde_json::json!([80, 8080]),
        "{rows}"
    );

    // A second laptop asking for one of the two ports is refused, naming both.
    let out = tether(
        &laptop,
        &as_strs(&web.args(&["intercept", "web-svc", "-p", &web_map])),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already intercepted on port 80, 8080"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(running.interrupt(), "tether intercept ends on Ctrl-C");
    assert_eq!(
        rt.block_on(web.specs()),
        before,
        "both ports restored exactly"
    );
    eventually_answers(&web_url, "app");
    eventually_answers(&admin_url, "app");
}
