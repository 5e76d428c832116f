//! The `users` binary as the pod runs it: its start-up checks, and its
//! memory under parallel sign-ups and logins at the default argon2 cost.
//!
//! The pod's limit is 128Mi (`k8s/deployment.yaml`); the kernel kills the
//! container when it is reached, and every account with it.

use std::{
    io::Read,
    net::TcpListener,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;

/// The pod's memory limit.
const POD_LIMIT_MIB: u64 = 128;

/// The users binary with `env`, its output captured.
fn users(env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_users"));
    command
        .env_remove("JWT_SECRET")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("the users binary starts")
}

/// Waits up to `limit` for `child` to exit; kills it if it does not.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn output(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    text
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn unset_or_empty_jwt_secret_stops_the_start_with_status_2() {
    let port = free_port().to_string();
    for env in [
        vec![("PORT", port.as_str())],
        vec![("PORT", port.as_str()), ("JWT_SECRET", "")],
    ] {
        let mut child = users(&env);
        let status = exit_within(&mut child, Duration::from_secs(10));
        let text = output(&mut child);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(2),
            "users must refuse to start without JWT_SECRET; it printed:\n{text}"
        );
        assert!(
            text.contains("users: JWT_SECRET=\"\" is invalid: it must be set"),
            "{text}"
        );
    }
}

/// `VmHWM`: the most resident memory the process has had, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib / 1024
}

/// Four sign-ups at once, then their four logins at once, twice over (a
/// room running the workshop's walkthrough): the process stays well under
/// the pod's limit and every request succeeds. Before the hashing was
/// bounded, each hash left its 19 MiB buffer resident and the release
/// binary peaked at 231 MiB on this; now it stays near 30 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_signups_and_logins_stay_well_under_the_pod_limit() {
    let port = free_port();
    let mut child = users(&[
        ("PORT", &port.to_string()),
        ("JWT_SECRET", "memory-test-secret"),
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "users did not start: {}",
            output(&mut child)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for round in 0..2 {
        for path in ["/signup", "/login"] {
            let calls = (0..4).map(|i| {
                let request = http
                    .post(format!("{base}{path}"))
                    .json(&json!({"username": format!("u{round}-{i}"), "password": "pw"}));
                async move { request.send().await.map(|r| r.status()) }
            });
            for status in futures_join(calls).await {
                let status = status.expect("users answers");
                assert!(
                    status == StatusCode::CREATED || status == StatusCode::OK,
                    "{path}: {status}"
                );
            }
        }
    }
    let peak = peak_rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    println!("users peak RSS: {peak} MiB");
    assert!(
        peak < POD_LIMIT_MIB / 2,
        "users peaked at {peak} MiB; the pod's limit is {POD_LIMIT_MIB} MiB"
    );
}

/// Runs the futures concurrently and gives their outputs in order.
async fn futures_join<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("the request task"));
    }
    outputs
}
