//! Save-to-serving latency of `tether up`, against the real cluster (`scripts/dev-cluster up`
//! and `eval "$(scripts/dev-cluster env)"` first). Prints figures; asserts nothing about time.
//!
//! For N edits to the users service's health handler, in one run, it measures from the
//! client side the time from the file write to the new answer through the forwarded port,
//! and reads tether's own breakdown, twice: with live update (the default: host build,
//! sync of the binary, restart) and with `--no-live-update` (host build, image build, push,
//! apply, rollout). tether's own overhead is everything but the host build (the compiler),
//! the rollout and the app's restart.
//!
//! The peer, measured in the same run, is the same update done by hand: the same host
//! build, then `podman build`, `podman push`, `kubectl set image` and `kubectl rollout
//! status`; its own overhead is that minus its host build. A by-hand live update
//! (`kubectl cp` and a restart through exec) is not possible here: the shop's images are
//! `FROM scratch`, with no `tar` and no shell.
//!
//! Run: `cargo bench --bench up` (EDITS=5 by default).

#[path = "../tests/e2e/process.rs"]
#[allow(dead_code)]
mod process;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use process::{Running, repo_copy};

const FORWARD: &str = "http://127.0.0.1:8001/healthz";
const HANDLER: &str = "Json(Health::ok())";

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
    assert!(
        original.contains(HANDLER),
        "the users health handler changed; update this bench"
    );

    let live = measure(&users, &original, &["up", "--no-tui"], "live", edits);
    let full = measure(
        &users,
        &original,
        &["up", "--no-tui", "--no-live-update"],
        "full",
        edits,
    );
    let by_hand = by_hand(&users, &original, edits.min(3));
    let _ = process::tether(&users, &["down"]);

    println!("\nsave -> new response through the forward (client side), {edits} edits each:");
    print_stats("tether up, live update", &live.client_side);
    print_stats("tether up --no-live-update", &full.client_side);
    if !by_hand.is_empty() {
        let totals: Vec<Duration> = by_hand.iter().map(|(t, _)| *t).collect();
        print_stats(
            "by hand (build, podman build/push, kubectl set image, rollout status)",
            &totals,
        );
        println!(
            "  ratio live update / by hand (medians): {:.2}",
            ratio(&live.client_side, &totals)
        );
    }
    println!("\ntether's own overhead (all but the compiler, the rollout and the app's restart):");
    print_stats("live update (goal <= 0.5 s median)", &live.own);
    print_stats("full rebuild (goal <= 2 s median)", &full.own);
    if !by_hand.is_empty() {
        let own: Vec<Duration> = by_hand
            .iter()
            .map(|(t, host)| t.saturating_sub(*host))
            .collect();
        print_stats("by hand, all but its host build", &own);
        println!(
            "  ratio full rebuild / by hand (medians): {:.2}",
            ratio(&full.own, &own)
        );
    }
    for (name, m) in [("live update", &live), ("full rebuild", &full)] {
        println!("\ntether's breakdown of each {name}:");
        for r in &m.reports {
            println!("  {}", r.split("ready: ").nth(1).unwrap_or(r));
        }
    }
}

struct Measured {
    client_side: Vec<Duration>,
    own: Vec<Duration>,
    reports: Vec<String>,
}

/// `edits` saves under `tether ARGS`, each waited for through the forward.
fn measure(users: &Path, original: &str, args: &[&str], tag: &str, edits: usize) -> Measured {
    let lib = users.join("src/routes.rs");
    let mut up = Running::start(users, args);
    up.wait_for(0, Duration::from_secs(900), "users ready", |l| {
        l.contains("[users] ready")
    });
    up.wait_for(0, Duration::from_secs(60), "the watcher", |l| {
        l.starts_with("watching ")
    });
    wait_for_body(r#"{"status":"ok"}"#, Duration::from_secs(120));
    let mut m = Measured {
        client_side: Vec::new(),
        own: Vec::new(),
        reports: Vec::new(),
    };
    for i in 0..edits {
        let marker = format!("{tag}-{i}");
        let mark = up.mark();
        let t = Instant::now();
        std::fs::write(&lib, edited(original, &marker)).expect("edit");
        wait_for_body(
            &format!(r#"{{"status":"{marker}"}}"#),
            Duration::from_secs(600),
        );
        m.client_side.push(t.elapsed());
        let line = up.wait_for(mark, Duration::from_secs(30), "the update report", |l| {
            l.contains("[users] ready: serving the change")
        });
        if let Some(own) = own_share(&line) {
            m.own.push(own);
        }
        m.reports.push(line);
    }
    // The next measurement starts from the source as shipped.
    std::fs::write(&lib, original).expect("restore");
    drop(up);
    m
}

/// The same update by hand: (total, of which its host build).
fn by_hand(users: &Path, original: &str, edits: usize) -> Vec<(Duration, Duration)> {
    let lib = users.join("src/routes.rs");
    let registry = std::env::var("TETHER_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    let mut out = Vec::new();
    for i in 0..edits {
        std::fs::write(&lib, edited(original, &format!("hand-{i}"))).expect("edit");
        let image = format!("{registry}/users:hand-{i}-{}", std::process::id());
        let t = Instant::now();
        let built = sh(users, &["../build-static", "users"]);
        let host = t.elapsed();
        let ok = built
            && sh(
                users,
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
                users,
                &["podman", "push", "-q", "--tls-verify=false", &image],
            )
            && sh(
                users,
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
                users,
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
        out.push((t.elapsed(), host));
    }
    out
}

fn edited(original: &str, marker: &str) -> String {
    original.replace(
        HANDLER,
        &format!(r#"Json(Health {{ status: "{marker}".to_owned() }})"#),
    )
}

/// "tether's own share 0.123s" in an update line.
fn own_share(line: &str) -> Option<Duration> {
    let rest = line.split("tether's own share ").nth(1)?;
    let secs: f64 = rest
        .trim_end_matches(')')
        .trim_end_matches('s')
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64(secs))
}

fn ratio(a: &[Duration], b: &[Duration]) -> f64 {
    median(a).as_secs_f64() / median(b).as_secs_f64()
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
    s.get(s.len() / 2).copied().unwrap_or_default()
}

fn print_stats(name: &str, v: &[Duration]) {
    if v.is_empty() {
        println!("  {name}: no figures");
        return;
    }
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
