//! Save-to-serving latency of `tether up`, against the real cluster (`scripts/dev-cluster up`
//! and `eval "$(scripts/dev-cluster env)"` first). Prints figures; asserts nothing about time.
//!
//! For each of N edits to the users service's health handler it measures, from the client
//! side, the time from the file write to the new answer through the forwarded port, and
//! reads tether's own breakdown (watch, digest, host build, image build, push, apply,
//! rollout). The peer, measured in the same run, is the same update done by hand the usual
//! way: the same host build, then `podman build`, `podman push`, `kubectl set image` and
//! `kubectl rollout status`.
//!
//! Run: `cargo bench --bench up` (EDITS=5 by default).

#[path = "../tests/e2e/process.rs"]
#[allow(dead_code)]
mod process;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use process::{Running, repo_copy};

const FORWARD: &str = "http://127.0.0.1:8001/healthz";

fn main() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "no cluster: run `scripts/dev-cluster up` and `eval \"$(scripts/dev-cluster env)\"` first"
        );
        return;
    }
    let edits: usize = std::env::var("EDITS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(5);
    let repo = repo_copy();
    let users = repo.path().join("examples/shop/users");
    let lib = users.join("src/routes.rs");
    let original = std::fs::read_to_string(&lib).expect("users source");
    let handler = "Json(Health::ok())";
    assert!(
        original.contains(handler),
        "the users health handler changed; update this bench"
    );

    let mut up = Running::start(&users, &["up", "--no-tui"]);
    up.wait_for(0, Duration::from_secs(900), "users ready", |l| {
        l.contains("[users] ready")
    });
    up.wait_for(0, Duration::from_secs(60), "the watcher", |l| {
        l.starts_with("watching ")
    });
    wait_for_body(r#"{"status":"ok"}"#, Duration::from_secs(60));

    let mut client_side = Vec::new();
    let mut reports = Vec::new();
    for i in 0..edits {
        let marker = format!("bench-{i}");
        let mark = up.mark();
        let t = Instant::now();
        std::fs::write(
            &lib,
            original.replace(
                handler,
                &format!(r#"Json(Health {{ status: "{marker}".to_owned() }})"#),
            ),
        )
        .expect("edit");
        wait_for_body(
            &format!(r#"{{"status":"{marker}"}}"#),
            Duration::from_secs(600),
        );
        client_side.push(t.elapsed());
        let line = up.wait_for(mark, Duration::from_secs(30), "the update report", |l| {
            l.contains("[users] ready: serving the change")
        });
        reports.push(line);
    }
    drop(up);

    // The peer: the same update by hand.
    let mut by_hand = Vec::new();
    let registry = std::env::var("TETHER_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    for i in 0..edits.min(3) {
        let marker = format!("hand-{i}");
        std::fs::write(
            &lib,
            original.replace(
                handler,
                &format!(r#"Json(Health {{ status: "{marker}".to_owned() }})"#),
            ),
        )
        .expect("edit");
        let image = format!("{registry}/users:hand-{i}-{}", std::process::id());
        let t = Instant::now();
        let ok = sh(&users, &["../build-static", "users"])
            && sh(
                &users,
                &[
                    "podman",
                    "build",
                    "-q",
                    "-f",
                    "Dockerfile.tether",
                    "-t",
                    &image,
                    ".",
                ],
            )
            && sh(
                &users,
                &["podman", "push", "-q", "--tls-verify=false", &image],
            )
            && sh(
                &users,
                &[
                    "kubectl",
                    "-n",
                    "api",
                    "set",
                    "image",
                    "deployment/users",
                    &format!("users={image}"),
                ],
            )
            && sh(
                &users,
                &[
                    "kubectl",
                    "-n",
                    "api",
                    "rollout",
                    "status",
                    "deployment/users",
                    "--timeout=300s",
                ],
            );
        if !ok {
            eprintln!("the by-hand peer failed; figures below are tether's alone");
            break;
        }
        by_hand.push(t.elapsed());
    }
    let _ = process::tether(&users, &["down"]);

    println!("\nsave -> new response through the forward (client side), {edits} edits:");
    print_stats("tether up", &client_side);
    if !by_hand.is_empty() {
        print_stats(
            "by hand (build, podman build/push, kubectl set image, rollout status)",
            &by_hand,
        );
        println!(
            "  ratio tether / by hand (medians): {:.2}",
            median(&client_side).as_secs_f64() / median(&by_hand).as_secs_f64()
        );
    }
    println!("\ntether's own breakdown of each update:");
    for r in &reports {
        println!("  {}", r.split("ready: ").nth(1).unwrap_or(r));
    }
}

fn sh(dir: &std::path::Path, argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_for_body(want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let client = http::blocking_client();
    while Instant::now() < deadline {
        if client(FORWARD).as_deref() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {want} from {FORWARD} within {timeout:?}");
}

/// A tiny blocking GET on the async client, on a runtime of its own.
mod http {
    pub fn blocking_client() -> impl Fn(&str) -> Option<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = reqwest::Client::new();
        move |url: &str| {
            rt.block_on(async {
                let r = client
                    .get(url)
                    .timeout(std::time::Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                r.text().await.ok()
            })
        }
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn print_stats(name: &str, v: &[Duration]) {
    let mut s = v.to_vec();
    s.sort();
    println!(
        "  {name}: median {:.2}s, min {:.2}s, max {:.2}s (n={})",
        median(&s).as_secs_f64(),
        s[0].as_secs_f64(),
        s[s.len() - 1].as_secs_f64(),
        s.len()
    );
}
