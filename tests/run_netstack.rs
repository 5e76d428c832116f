//! `tether run` end to end on this machine: real kernel namespaces, a real TUN device and
//! real programs (curl, a static busybox, sh) reaching a fake cluster on loopback.
//!
//! Needs root or unprivileged user namespaces, and /dev/net/tun; without them each test
//! prints why and passes (set TETHER_REQUIRE_RUN=1 to make that a failure). Tests that
//! need a second process (signals, tether killed, a non-root caller) re-run this binary
//! with `TETHER_RUN_TEST_RUNNER` set: then [`runner_entry`] runs one command through
//! `tether run` and exits with its code.

mod run_support;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use run_support::{FakeNet, HttpService, http_service, pattern_sha256, upstream_dns};
use tether::run::{RunCommand, RunError, RunOptions, UserNamespace, exit_code, run_with};

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    if rustix::process::geteuid().is_root() {
        return None;
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user.max_user_namespaces=0".into());
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("kernel.unprivileged_userns_clone=0".into());
    }
    None
}

macro_rules! require_namespaces {
    () => {
        if let Some(reason) = skip_reason() {
            assert!(
                std::env::var_os("TETHER_REQUIRE_RUN").is_none(),
                "tether run cannot work here: {reason}"
            );
            eprintln!("skipped: tether run needs namespaces and a TUN device: {reason}");
            return;
        }
    };
}

/// The fake cluster and the laptop-side services of one test.
struct Cluster {
    net: FakeNet,
    _orders: HttpService,
    bulk: HttpService,
    /// The laptop's resolver, as the namespace's DNS forwards to it.
    upstream: SocketAddr,
    /// A service on a non-loopback address of the laptop, reached from the namespace
    /// as a laptop (not cluster) destination.
    laptop: Option<(Ipv4Addr, HttpService)>,
}

/// A global IPv4 address of this machine, if it has one.
fn laptop_address() -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next()?.parse().ok())
}

async fn cluster() -> Cluster {
    let net = FakeNet::default();
    let orders = http_service("orders-svc", IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let bulk = http_service("bulk", IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let ip = net.name("orders-svc.api", "198.18.0.7");
    net.serve(ip, 8080, orders.addr);
    let ip = net.name("bulk.api", "198.18.0.8");
    net.serve(ip, 9000, bulk.addr);
    // A cluster name whose dial is refused (no ready endpoints).
    net.name("refused.api", "198.18.0.9");
    // A headless-like name with so many addresses that its answer needs DNS over TCP,
    // and an IPv6-only one.
    let many = (1..=60)
        .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)))
        .collect();
    net.name_many("many.api", many, 8080, orders.addr);
    let ip = net.name("v6svc.api", "2001:db8::7");
    net.serve(ip, 8080, orders.addr);
    // And one the cluster has no route to.
    let ip = net.name("unreachable.api", "198.18.0.10");
    net.unreachable(ip);

    let mut upstream_names = HashMap::new();
    let mut laptop = None;
    if let Some(addr) = laptop_address() {
        let service = http_service("laptop-svc", IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
        upstream_names.insert("laptop-svc.test".to_string(), addr);
        laptop = Some((addr, service));
    }
    let upstream = upstream_dns(upstream_names).await;
    Cluster {
        net,
        _orders: orders,
        bulk,
        upstream,
        laptop,
    }
}

/// What a command printed and how it ended.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `script` with `sh -c` through `tether run`, its output captured in files (CMD's
/// stdio is tether's own).
async fn run_sh(cluster: &Cluster, script: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err = dir.path().join("err");
    let wrapped = format!("exec >\"$0\" 2>\"$1\"\n{script}");
    let cmd = RunCommand::from_argv(
        [
            "sh".as_ref(),
            "-c".as_ref(),
            wrapped.as_str().as_ref(),
            out.as_os_str(),
            err.as_os_str(),
        ],
        "api",
    )
    .unwrap();
    let options = RunOptions {
        upstream_dns: Some(vec![cluster.upstream]),
        ..RunOptions::default()
    };
    let start = Instant::now();
    let status = run_with(cmd, cluster.net.clone(), options).await;
    let elapsed = start.elapsed();
    let status = status.unwrap_or_else(|e| panic!("tether run failed: {e:?}"));
    Ran {
        code: exit_code(status),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        elapsed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_a_cluster_service_by_its_name() {
    require_namespaces!();
    let c = cluster().await;
    let ran = run_sh(
        &c,
        "curl -sS --max-time 10 http://orders-svc.api:8080/healthz",
    )
    .await;
    assert_eq!(ran.code, 0, "stderr: {}", ran.stderr);
    assert_eq!(ran.stdout, "orders-svc ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_too_large_for_udp_comes_over_tcp() {
    require_namespaces!();
    let c = cluster().await;
    // 60 A records do not fit in 512 bytes: glibc gets a truncated answer and asks again
    // over TCP, which the stack's DNS serves too.
    let ran = run_sh(&c, "curl -sS --max-time 10 http://many.api:8080/healthz").await;
    assert_eq!(ran.code, 0, "stderr: {}", ran.stderr);
    assert_eq!(ran.stdout, "orders-svc ok\n");
    // A and AAAA over UDP, then at least the A again over TCP.
    let asked = c.net.lookups.lock().unwrap().get("many.api").copied();
    assert!(asked >= Some(3), "asked {asked:?} times: no retry over TCP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_cluster_address_is_reached_too() {
    require_namespaces!();
    if !Path::new("/proc/net/if_inet6").exists() {
        eprintln!("skipped: this kernel has no IPv6");
        return;
    }
    let c = cluster().await;
    let ran = run_sh(&c, "curl -sS --max-time 10 http://v6svc.api:8080/healthz").await;
    assert_eq!(ran.code, 0, "stderr: {}", ran.stderr);
    assert_eq!(ran.stdout, "orders-svc ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dial_is_a_refused_connect_at_once() {
    require_namespaces!();
    let c = cluster().await;
    // -v: curl names the connect's errno only in its trace.
    let ran = run_sh(&c, "curl -sSv --max-time 10 http://refused.api:8080/").await;
    assert_eq!(
        ran.code, 7,
        "curl's 'failed to connect'; stderr: {}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("198.18.0.9 port 8080 failed: Connection refused"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.elapsed < Duration::from_millis(900),
        "took {:?}",
        ran.elapsed
    );
    assert_eq!(c.net.dials.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_destination_fails_at_once_too() {
    require_namespaces!();
    let c = cluster().await;
    let ran = run_sh(&c, "curl -sSv --max-time 10 http://unreachable.api:8080/").await;
    assert_eq!(ran.code, 7, "stderr: {}", ran.stderr);
    assert!(
        ran.stderr
            .contains("198.18.0.10 port 8080 failed: No route to host"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.elapsed < Duration::from_millis(900),
        "took {:?}",
        ran.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_neither_the_cluster_nor_the_laptop_knows_does_not_resolve() {
    require_namespaces!();
    let c = cluster().await;
    let ran = run_sh(&c, "curl -sS --max-time 10 http://nosuch.api:8080/").await;
    assert_eq!(
        ran.code, 6,
        "curl's 'could not resolve host'; stderr: {}",
        ran.stderr
    );
    assert_eq!(c.net.dials.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laptop_names_and_addresses_go_out_from_the_laptop() {
    require_namespaces!();
    let c = cluster().await;
    let Some((addr, service)) = &c.laptop else {
        eprintln!("skipped: this machine has no global IPv4 address to serve on");
        return;
    };
    let port = service.addr.port();
    let script = format!(
        "curl -sS --max-time 10 http://laptop-svc.test:{port}/healthz && curl -sS --max-time 10 http://{addr}:{port}/healthz"
    );
    let ran = run_sh(&c, &script).await;
    assert_eq!(ran.code, 0, "stderr: {}", ran.stderr);
    assert_eq!(ran.stdout, "laptop-svc ok\nlaptop-svc ok\n");
    assert_eq!(
        c.net.dials.load(Ordering::Relaxed),
        0,
        "not through the cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_client_resolves_and_connects_too() {
    require_namespaces!();
    let busybox = Path::new("/usr/bin/busybox");
    assert!(
        busybox.exists(),
        "install Debian's busybox-static (scripts/test does)"
    );
    let file = std::process::Command::new("file")
        .arg(busybox)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !file.is_empty() {
        assert!(file.contains("statically linked"), "{file}");
    }
    let c = cluster().await;
    let ran = run_sh(
        &c,
        "busybox wget -q -O - http://orders-svc.api:8080/healthz",
    )
    .await;
    assert_eq!(ran.code, 0, "stderr: {}", ran.stderr);
    assert_eq!(ran.stdout, "orders-svc ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabytes_each_way_arrive_intact() {
    require_namespaces!();
    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up.bin");
    let size = 20_000_000;
    let script = format!(
        "set -e
         head -c {size} /dev/urandom > {up}
         curl -sS --max-time 120 -T {up} http://bulk.api:9000/upload
         sha256sum < {up} | cut -d' ' -f1
         curl -sS --max-time 120 'http://bulk.api:9000/download?bytes={size}' | sha256sum | cut -d' ' -f1",
        up = up.display()
    );
    let ran = run_sh(&c, &script).await;
    assert_eq!(ran.code, 0, "stderr: {}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", ran.stdout);
    assert_eq!(lines[0], lines[1], "the upload arrived changed");
    assert_eq!(
        lines[2],
        pattern_sha256(size),
        "the download arrived changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_stops_the_sender() {
    require_namespaces!();
    let c = cluster().await;
    let total = 400_000_000u64;
    // `sleep` never reads the pipe: curl blocks, then the namespace's socket, then the
    // stack's window, then tether's reads of the service's connection.
    let script =
        format!("curl -sS --max-time 20 'http://bulk.api:9000/download?bytes={total}' | sleep 4");
    let sent = c.bulk.sent.clone();
    let sampler = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let first = sent.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        (first, sent.load(Ordering::Relaxed))
    });
    let ran = run_sh(&c, &script).await;
    let (first, second) = sampler.await.unwrap();
    assert!(first > 0, "the download never started: {}", ran.stderr);
    assert!(
        second - first < 1_000_000,
        "the sender kept going while nobody read: {first} then {second} bytes"
    );
    assert!(
        second < 100_000_000,
        "{second} bytes were buffered for a reader that read nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_is_the_commands() {
    require_namespaces!();
    let c = cluster().await;
    assert_eq!(run_sh(&c, "exit 3").await.code, 3);
    assert_eq!(run_sh(&c, "kill -TERM $$").await.code, 128 + 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_bad_input() {
    require_namespaces!();
    let c = cluster().await;
    let cmd = RunCommand::from_argv(["tether-no-such-program"], "api").unwrap();
    let err = run_with(cmd, c.net.clone(), RunOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::CommandNotFound { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 2);
}

/// What of the laptop's network a run could change.
#[derive(Debug, PartialEq, Eq)]
struct LaptopNet {
    routes: String,
    links: Vec<String>,
    resolv_conf: Vec<u8>,
    temp_files: Vec<PathBuf>,
}

fn laptop_net() -> LaptopNet {
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Veths (and their routes) come and go with the dev cluster's pods.
    let routes = ip(&["route", "show", "table", "all"])
        .lines()
        .filter(|l| !l.contains(" dev veth"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut links: Vec<String> = ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .filter(|name| !name.starts_with("veth"))
        .collect();
    links.sort();
    let mut temp_files: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("tether-run-resolv.{}.", std::process::id()))
            })
        })
        .collect();
    temp_files.sort();
    LaptopNet {
        routes,
        links,
        resolv_conf: std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        temp_files,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_laptop_is_the_same_during_and_after() {
    require_namespaces!();
    let c = cluster().await;
    let before = laptop_net();
    let during = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        laptop_net()
    });
    let ran = run_sh(
        &c,
        "curl -sS --max-time 10 http://orders-svc.api:8080/healthz && grep nameserver /etc/resolv.conf && ip -o link show && sleep 1.5",
    )
    .await;
    assert_eq!(ran.code, 0, "stderr: {}", ran.stderr);
    // Inside: tether's nameserver and a TUN device of its own.
    assert!(
        ran.stdout.contains("nameserver 169.254.77.1"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("tun0"), "{}", ran.stdout);
    let during = during.await.unwrap();
    let after = laptop_net();
    assert_eq!(before, during, "the laptop changed while the command ran");
    assert_eq!(before, after, "the laptop changed after the command ran");
}

// ---- Tests in a second process -------------------------------------------------------

/// The environment variable that turns this binary into a one-command runner.
const RUNNER: &str = "TETHER_RUN_TEST_RUNNER";
/// Set: the runner makes a user namespace even as root.
const RUNNER_USERNS: &str = "TETHER_RUN_TEST_USERNS";

/// In a runner process: runs the command in `TETHER_RUN_TEST_RUNNER` (a JSON argv) against
/// the fake cluster and exits with its code. In the test suite: nothing.
#[test]
fn runner_entry() {
    let Ok(argv) = std::env::var(RUNNER) else {
        return;
    };
    let argv: Vec<String> = serde_json::from_str(&argv).expect("a JSON argv");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt.block_on(async {
        let c = cluster().await;
        let cmd = match RunCommand::from_argv(argv, "api") {
            Ok(cmd) => cmd,
            Err(e) => return e.exit_code(),
        };
        let options = RunOptions {
            upstream_dns: Some(vec![c.upstream]),
            user_namespace: if std::env::var_os(RUNNER_USERNS).is_some() {
                UserNamespace::Always
            } else {
                UserNamespace::UnlessRoot
            },
            ..RunOptions::default()
        };
        match run_with(cmd, c.net.clone(), options).await {
            Ok(status) => exit_code(status),
            Err(e) => {
                eprintln!("tether run: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
                e.exit_code()
            }
        }
    });
    std::process::exit(code);
}

/// This test binary as a runner of `argv`, started through `wrapper` (e.g. a drop to
/// another user) when given.
fn runner(exe: &Path, wrapper: &[String], argv: &[&str]) -> tokio::process::Command {
    let mut cmd = if wrapper.is_empty() {
        tokio::process::Command::new(exe)
    } else {
        let mut cmd = tokio::process::Command::new(&wrapper[0]);
        cmd.args(&wrapper[1..]).arg(exe);
        cmd
    };
    cmd.args(["runner_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(RUNNER, serde_json::to_string(argv).unwrap())
        .stdin(Stdio::null())
        // Its own process group: run from a terminal, this suite's group is the
        // foreground one, and tether would (rightly) leave a SIGINT to the terminal.
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// Waits for `path` to hold a line, and returns it.
async fn wait_for_line(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(line) = text.lines().next() {
                return line.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} stayed empty", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_tether_reaches_the_command() {
    require_namespaces!();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'exit 42' INT; echo up > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let exe = std::env::current_exe().unwrap();
    let mut child = runner(&exe, &[], &["sh", "-c", &script]).spawn().unwrap();
    wait_for_line(&ready).await;
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("tether run still running after SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(42), "the command's SIGINT trap decides");
}

/// Starts `argv` in a runner (through `wrapper`), waits for CMD to write its pid to
/// `pid_file`, SIGKILLs the runner, and checks that CMD goes with it.
async fn assert_dies_with_tether(exe: &Path, wrapper: &[String], pid_file: &Path) {
    let script = format!("echo $$ > {}; exec sleep 300", pid_file.display());
    let mut child = runner(exe, wrapper, &["sh", "-c", &script])
        .spawn()
        .unwrap();
    let runner_pid = child.id().unwrap();
    let cmd_pid: i32 = wait_for_line(pid_file).await.parse().unwrap();
    child.start_kill().unwrap(); // SIGKILL, at once: the resolv.conf must be gone already
    child.wait().await.unwrap();
    let gone = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true)
    };
    for _ in 0..100 {
        if gone(cmd_pid) {
            // And the namespace's resolv.conf left nothing in the temp dir.
            let leftover = std::fs::read_dir(std::env::temp_dir())
                .unwrap()
                .filter_map(|e| e.ok())
                .any(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(&format!("tether-run-resolv.{runner_pid}.")))
                });
            assert!(!leftover, "a killed tether left its resolv.conf behind");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the command (pid {cmd_pid}) outlived tether");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_dies_with_tether() {
    require_namespaces!();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    assert_dies_with_tether(&exe, &[], &dir.path().join("pid")).await;
}

/// This binary copied where anyone may run it, and the wrapper that starts it as `nobody`
/// in a private mount namespace whose /dev/net/tun is a fresh device node of mode 0666
/// (the mode distributions give it; this machine's may be 0600), so that a run must make
/// its own user namespace. Only root can build it.
fn as_nobody(dir: &Path) -> (PathBuf, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let exe = dir.join("run_netstack");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "set -e; d=$(mktemp -d); mount -t tmpfs tether-test-dev \"$d\"; \
         mknod -m 666 \"$d/tun\" c 10 200; mount --bind \"$d/tun\" /dev/net/tun; \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$@\"",
        "sh",
    ]
    .map(String::from)
    .to_vec();
    (exe, wrapper)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_users_command_dies_with_tether_too() {
    require_namespaces!();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: already unprivileged (the_command_dies_with_tether covers it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, wrapper) = as_nobody(dir.path());
    assert_dies_with_tether(&exe, &wrapper, &dir.path().join("pid")).await;
}

/// As root, the same machinery as an unprivileged user (see [`as_nobody`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_user_gets_the_same() {
    require_namespaces!();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: already unprivileged (the other tests cover it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, wrapper) = as_nobody(dir.path());
    let out = dir.path().join("out");
    let script = format!(
        "exec > {out}; id -u; id -g; curl -sS --max-time 10 http://orders-svc.api:8080/healthz; exit 5",
        out = out.display()
    );
    let status = runner(&exe, &wrapper, &["sh", "-c", &script])
        .status()
        .await
        .unwrap();
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(status.code(), Some(5), "printed: {printed}");
    assert_eq!(printed, "65534\n65534\norders-svc ok\n");
    // Seen from outside, what CMD made is the caller's.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

/// The runner's exit code and what it printed on stderr.
async fn runner_failure(wrapper: &[&str], user_ns: bool) -> (Option<i32>, String) {
    let exe = std::env::current_exe().unwrap();
    let wrapper: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
    let mut cmd = runner(&exe, &wrapper, &["true"]);
    if user_ns {
        cmd.env(RUNNER_USERNS, "1");
    }
    let out = cmd.stderr(Stdio::piped()).output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tun_device_is_a_clear_error() {
    require_namespaces!();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: hiding /dev/net/tun takes root");
        return;
    }
    // /dev/net/tun hidden under an empty tmpfs, in a mount namespace of the runner's.
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs tether-test-no-tun /dev/net && exec \"$@\"",
        "sh",
    ];
    let (code, stderr) = runner_failure(&wrapper, false).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no TUN device (/dev/net/tun)"), "{stderr}");
    assert!(stderr.contains("modprobe tun"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_namespaces_is_a_clear_error_naming_the_sysctls() {
    require_namespaces!();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: limiting user namespaces takes root");
        return;
    }
    // user.max_user_namespaces is per user namespace: 0 in one of the runner's own, so the
    // run's unshare fails there as on a machine with the sysctl at 0.
    let wrapper = [
        "unshare",
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"",
        "sh",
    ];
    let (code, stderr) = runner_failure(&wrapper, true).await;
    assert_eq!(code, Some(1), "{stderr}");
    for sysctl in [
        "kernel.unprivileged_userns_clone",
        "user.max_user_namespaces",
        "kernel.apparmor_restrict_unprivileged_userns",
    ] {
        assert!(stderr.contains(sysctl), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_can_run_the_rootless_way_too() {
    require_namespaces!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = format!(
        "id -u > {out}; curl -sS --max-time 10 http://orders-svc.api:8080/healthz >> {out}",
        out = out.display()
    );
    let exe = std::env::current_exe().unwrap();
    let status = runner(&exe, &[], &["sh", "-c", &script])
        .env(RUNNER_USERNS, "1")
        .status()
        .await
        .unwrap();
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "printed: {printed}");
    let uid = rustix::process::geteuid().as_raw();
    assert_eq!(printed, format!("{uid}\norders-svc ok\n"));
}
