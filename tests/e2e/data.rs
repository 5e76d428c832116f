//! The example data stores (`examples/data`): `tether up --ci` builds PostgreSQL and Redis
//! from Debian's packages on the Debian base image `scripts/dev-cluster` puts in the
//! registry, and deploys them; each answers its own client (`psql`, `redis-cli`: what a
//! developer runs against them); `tether down` removes all of it.
//!
//! The clients run on the node first, which reaches pod IPs and ClusterIPs, then from the
//! laptop namespace through `tether run`, by cluster name.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::{Api, Client};

use crate::{
    connect::{self, TURN},
    process::tether,
    support::{self, cluster, laptop::Laptop, namespace_gone},
};

const NAMESPACE: &str = "data";
/// The example password in `examples/data/k8s/postgres.yaml`.
const PG_PASSWORD: &str = "tether-example";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Whether the client `tool` runs here (see [`support::have`]).
fn have(tool: &str) -> bool {
    support::have(
        tool,
        "--version",
        "apt-get install postgresql-client redis-tools",
    )
}

/// `tool ARGS` with a deadline: the clients' own timeouts cover connecting, this covers
/// the rest.
fn run(tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("timeout");
    c.arg("30").arg(tool).args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    eprintln!(
        "$ {tool} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The first successful answer of `ask`, or its last failure after 20 s. A Service's
/// ClusterIP refuses connections for a moment after its pod is ready, until kube-proxy
/// has written the rules for the new endpoint, so the first answer of each store is
/// waited for (redis-cli reports a refusal with exit code 0, hence the stdout check).
fn first_answer(ask: impl Fn() -> Output) -> Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = ask();
        let refused = String::from_utf8_lossy(&out.stderr).contains("refused")
            || String::from_utf8_lossy(&out.stdout).contains("refused");
        if (out.status.success() && !refused) || std::time::Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn cluster_ip(client: &Client, name: &str) -> String {
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .get(name)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap_or_else(|| panic!("Service {name} has a ClusterIP"))
}

/// Runs `tether down --delete-namespaces` in the project when the test ends, passed or
/// failed, so a failure leaves nothing behind for the next run.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = tether(self.0, &["down", "--delete-namespaces"]);
    }
}

#[test]
fn postgres_and_redis_build_on_debian_answer_their_clients_and_go_with_down() {
    let rt = runtime();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    if !have("psql") || !have("redis-cli") {
        return;
    }
    let client = cluster.client.clone();
    // A copy, so tether's records (`.tether/`) stay out of the source tree.
    let project = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(source.join("."))
        .arg(project.path())
        .status()
        .unwrap();
    assert!(copied.success());

    let down = Down(project.path());
    let out = tether(project.path(), &["up", "--ci", "--timeout", "400"]);
    assert!(out.status.success(), "tether up --ci in examples/data");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all resources ready"));

    // PostgreSQL through its Service, with the example password; its StatefulSet's pod
    // has the stable name a client can use, pg-0.pg.data.
    let postgres = rt.block_on(cluster_ip(&client, "postgres"));
    let pg_env = [("PGPASSWORD", PG_PASSWORD), ("PGCONNECT_TIMEOUT", "10")];
    // Ready pods reach the Service's rules a moment later (kube-proxy): until then its
    // ClusterIP refuses, so the first answer is waited for, briefly.
    let select = |host: &str| {
        run(
            "psql",
            &[
                "-h", host, "-U", "postgres", "-d", "postgres", "-w", "-tA", "-c", "select 1",
            ],
            &pg_env,
        )
    };
    let out = first_answer(|| select(&postgres));
    assert!(out.status.success(), "psql against postgres.data");
    assert_eq!(stdout(&out), "1");
    let wrong = run(
        "psql",
        &[
            "-h", &postgres, "-U", "postgres", "-w", "-tA", "-c", "select 1",
        ],
        &[
            ("PGPASSWORD", "not-the-password"),
            ("PGCONNECT_TIMEOUT", "10"),
        ],
    );
    assert!(
        !wrong.status.success()
            && String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "TCP connections need the password"
    );
    let pg0 = rt
        .block_on(Api::<Pod>::namespaced(client.clone(), NAMESPACE).get("pg-0"))
        .expect("the StatefulSet's pod is pg-0");
    let pg0_ip = pg0.status.and_then(|s| s.pod_ip).expect("pg-0 has an IP");
    let lookup = run(
        "/bin/busybox",
        &["nslookup", "pg-0.pg.data.svc.cluster.local", "10.96.0.10"],
        &[],
    );
    assert!(
        stdout(&lookup).contains(&format!("Address: {pg0_ip}")),
        "cluster DNS names pg-0.pg.data"
    );

    // Redis through its Service: PING, and a value written and read back.
    let redis = rt.block_on(cluster_ip(&client, "redis"));
    let out = first_answer(|| run("redis-cli", &["-h", &redis, "ping"], &[]));
    assert_eq!(stdout(&out), "PONG");
    let out = run("redis-cli", &["-h", &redis, "set", "tether", "up"], &[]);
    assert_eq!(stdout(&out), "OK");
    let out = run("redis-cli", &["-h", &redis, "get", "tether"], &[]);
    assert_eq!(stdout(&out), "up");

    // From the laptop, which reaches neither pod IPs nor ClusterIPs nor cluster DNS: the
    // same clients, which know no proxy, by cluster name through `tether run`.
    if let Some(laptop) = Laptop::from_env() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let mut plain = laptop.command("timeout");
        plain.args(["10", "redis-cli", "-h", "redis.data", "ping"]);
        assert_ne!(
            stdout(&connect::run(plain)),
            "PONG",
            "the laptop reached redis by itself"
        );
        let state = tempfile::tempdir().unwrap();
        let through = |args: &[&str]| {
            let mut all = vec!["run", "-n", NAMESPACE, "--", "timeout", "30"];
            all.extend_from_slice(args);
            connect::run(connect::tether_cmd(&laptop, state.path(), &all))
        };
        for host in ["postgres.data", "pg-0.pg.data", "postgres"] {
            let out = through(&[
                "env",
                "PGPASSWORD=tether-example",
                "PGCONNECT_TIMEOUT=10",
                "psql",
                "-h",
                host,
                "-U",
                "postgres",
                "-w",
                "-tA",
                "-c",
                "select 1",
            ]);
            assert_eq!(stdout(&out), "1", "psql -h {host} through tether run");
        }
        let out = through(&["redis-cli", "-h", "redis.data", "ping"]);
        assert_eq!(stdout(&out), "PONG", "redis-cli through tether run");
    }

    // Down: everything tether made goes, the namespace with it.
    drop(down);
    rt.block_on(namespace_gone(&client, NAMESPACE, Duration::from_secs(120)));
}

/// `redis-benchmark --csv` rows: (test, requests/s, p50 ms, p99 ms).
fn redis_rows(csv: &str) -> Vec<(String, f64, f64, f64)> {
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(|c| c.trim_matches('"')).collect();
            let num = |i: usize| f.get(i)?.parse::<f64>().ok();
            Some((f.first()?.to_string(), num(1)?, num(4)?, num(6)?))
        })
        .collect()
}

/// pgbench's summary: (transactions/s, average latency ms).
fn pgbench_summary(out: &str) -> Option<(f64, f64)> {
    let after = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((after("tps = ")?, after("latency average = ")?))
}

/// Figures for the data stores from the laptop (nothing is asserted;
/// `scripts/bench-connect` runs it): `redis-benchmark` and `pgbench` through `tether run`
/// by cluster name, against the same through `kubectl port-forward` from the same laptop.
#[test]
#[ignore = "a benchmark: scripts/bench-connect"]
fn bench_data_stores_through_run() {
    let rt = runtime();
    let Some(_cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    if !have("pgbench") || !have("redis-benchmark") {
        return;
    }
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let project = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(source.join("."))
        .arg(project.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let _down = Down(project.path());
    assert!(
        tether(project.path(), &["up", "--ci", "--timeout", "400"])
            .status
            .success()
    );
    let state = tempfile::tempdir().unwrap();
    let pg = "PGPASSWORD=tether-example";
    let through = |args: &[&str]| {
        let mut all = vec!["run", "-n", NAMESPACE, "--", "timeout", "120"];
        all.extend_from_slice(args);
        stdout(&connect::run(connect::tether_cmd(
            &laptop,
            state.path(),
            &all,
        )))
    };
    let direct = |args: &[&str]| {
        let mut c = laptop.command("timeout");
        c.arg("120").args(args);
        stdout(&connect::run(c))
    };
    let redis = ["-n", "20000", "-c", "16", "-t", "set,get", "--csv"];
    let pgbench = [
        "-S", "-T", "8", "-c", "4", "-j", "2", "-U", "postgres", "postgres",
    ];
    through(&[
        "env",
        pg,
        "pgbench",
        "-i",
        "-q",
        "-h",
        "postgres.data",
        "-U",
        "postgres",
        "postgres",
    ]);

    let mut redis_run = vec!["redis-benchmark", "-h", "redis.data"];
    redis_run.extend_from_slice(&redis);
    let redis_via_run = redis_rows(&through(&redis_run));
    let mut pg_run = vec!["env", pg, "pgbench", "-h", "postgres.data"];
    pg_run.extend_from_slice(&pgbench);
    let pg_via_run = pgbench_summary(&through(&pg_run));

    // The peer: kubectl port-forward from the same laptop to the same Services.
    let port = || {
        laptop
            .bind_tcp("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (rport, pport) = (port(), port());
    let forwards: Vec<_> = [("svc/redis", rport, 6379), ("svc/postgres", pport, 5432)]
        .into_iter()
        .map(|(svc, local, remote)| {
            laptop
                .command("kubectl")
                .args([
                    "-n",
                    NAMESPACE,
                    "port-forward",
                    svc,
                    &format!("{local}:{remote}"),
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("kubectl is on PATH")
        })
        .collect();
    for p in [rport, pport] {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while laptop.connect_tcp(addr, Duration::from_secs(1)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "kubectl port-forward :{p}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (rport, pport) = (rport.to_string(), pport.to_string());
    let mut redis_kubectl = vec!["redis-benchmark", "-h", "127.0.0.1", "-p", &rport];
    redis_kubectl.extend_from_slice(&redis);
    let redis_via_kubectl = redis_rows(&direct(&redis_kubectl));
    let mut pg_kubectl = vec!["env", pg, "pgbench", "-h", "127.0.0.1", "-p", &pport];
    pg_kubectl.extend_from_slice(&pgbench);
    let pg_via_kubectl = pgbench_summary(&direct(&pg_kubectl));
    for mut f in forwards {
        let _ = f.kill();
        let _ = f.wait();
    }

    println!("\n== data stores from the laptop: tether run vs kubectl port-forward");
    println!("{:<44} {:>12} {:>9} {:>9}", "path", "req/s", "p50", "p99");
    for (name, rows) in [
        ("redis-benchmark -c16, tether run", &redis_via_run),
        (
            "redis-benchmark -c16, kubectl port-forward",
            &redis_via_kubectl,
        ),
    ] {
        for (test, rps, p50, p99) in rows {
            println!(
                "{:<44} {rps:>12.0} {p50:>7.2}ms {p99:>7.2}ms",
                format!("{name} {test}")
            );
        }
    }
    for (name, s) in [
        ("pgbench -S -c4, tether run", pg_via_run),
        ("pgbench -S -c4, kubectl port-forward", pg_via_kubectl),
    ] {
        if let Some((tps, avg)) = s {
            println!("{name:<44} {tps:>12.0} {avg:>7.2}ms (average)");
        }
    }
    for ((test, a, ..), (_, b, ..)) in redis_via_run.iter().zip(&redis_via_kubectl) {
        println!("ratio run/kubectl, redis {test} throughput: {:.2}", a / b);
    }
    if let (Some((a, _)), Some((b, _))) = (pg_via_run, pg_via_kubectl) {
        println!("ratio run/kubectl, pgbench tps: {:.2}", a / b);
    }
}
