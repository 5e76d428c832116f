//! The workshop, end to end, typed step by step as an attendee would: `tether up` in the
//! users folder and an edit of its greeting served by live update; the shop deployed by
//! `tether up --ci` and kept forwarded by `tether up`; `tether connect`; the fixed payments
//! service running on the developer's laptop under `tether run`; `tether intercept
//! payments-svc` routing the cluster's payments traffic to it, so through the gateway in
//! the cluster the second payment of an order is refused with 403. After `tether leave`
//! the cluster's own payments pods serve again (and pay twice again), and the Service and
//! Deployment specs equal the originals exactly. After each step `tether workshop -o json`
//! reports it passing; a second test stops the local payments service on purpose.
//!
//! Everything the developer runs (`tether up`, `intercept`, `leave`, `down`, the fixed
//! payments service, the walkthrough's `curl`s) runs in the laptop namespace of
//! [`Laptop`]: up's forwards (users 8001, gateway 8000) are on the laptop's loopback, and
//! the cluster's objects are checked from the node with its own client.

use std::{
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{Api, Client};

use crate::{
    process::{Running, output, repo_copy, shop_target},
    support::{cluster, laptop::Laptop},
    up::{DownOnPanic, SHOP},
};

/// Up's forward of the gateway, on the laptop's loopback.
const GATEWAY: &str = "http://127.0.0.1:8000";

/// The Service's and the Deployment's spec, as the workshop must leave them.
async fn payments_specs(client: &Client) -> serde_json::Value {
    let s = Api::<Service>::namespaced(client.clone(), "api")
        .get("payments-svc")
        .await
        .unwrap();
    let d = Api::<Deployment>::namespaced(client.clone(), "api")
        .get("payments")
        .await
        .unwrap();
    serde_json::json!({"service": s.spec, "deployment": d.spec})
}

/// The workshop's walkthrough, run on the laptop against up's forward of the gateway.
fn walkthrough(laptop: &Laptop, shop: &Path) -> String {
    let out = laptop
        .command("bash")
        .arg(shop.join("walkthrough.sh"))
        .arg(GATEWAY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The last HTTP status the walkthrough printed for its step 7, the second payment.
fn second_payment(text: &str) -> String {
    let step = text.split("== 7.").nth(1).unwrap_or_default();
    step.lines()
        .find(|l| l.starts_with("< HTTP"))
        .unwrap_or_default()
        .to_owned()
}

/// `tether workshop -o json EXTRA` as the attendee runs it on the laptop, beside their
/// connect session (`state`): the report of every step.
fn workshop(laptop: &Laptop, repo: &Path, state: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["workshop", "-o", "json"];
    args.extend_from_slice(extra);
    let mut c = laptop.tether(&repo.join("workspace-demo"), &args);
    c.env("XDG_RUNTIME_DIR", state);
    let out = output(c);
    serde_json::from_slice(&out.stdout).expect("tether workshop -o json prints JSON")
}

/// Asserts that steps 1 to `last` pass in `report`.
fn passed_through(report: &serde_json::Value, last: usize) {
    for n in 1..=last {
        let step = &report["steps"][n - 1];
        assert_eq!(step["passed"], true, "step {n} passes: {report:#}");
    }
}

/// The fixed payments service on the laptop, killed when the test ends.
struct Local(Child);

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds the payments service with the workshop's fix (`--features solution`) and
/// returns the binary, copied out of the shop so a later build cannot replace it.
fn fixed_payments(repo: &Path) -> String {
    let shop = repo.join("examples/shop");
    let build = std::process::Command::new(shop.join("build-static"))
        .args(["payments", "--features", "solution"])
        .current_dir(&shop)
        .env("CARGO_TARGET_DIR", shop_target())
        .status()
        .unwrap();
    assert!(build.success(), "the solution builds");
    let binary = repo.join("payments-fixed");
    std::fs::copy(shop.join("payments/.build/payments"), &binary).unwrap();
    binary.to_string_lossy().into_owned()
}

/// Step 5's command: `binary` on the laptop on 8080 under `tether run -n namespace -p
/// 8080`, calling its default ORDERS_URL, http://orders-svc.api, as it does in the
/// cluster. Returns once it answers `/healthz`.
fn run_payments(
    laptop: &Laptop,
    repo: &Path,
    state: &Path,
    namespace: &str,
    binary: &str,
) -> Local {
    let mut local = laptop.tether(
        &repo.join("examples/shop"),
        &[
            "run",
            "-n",
            namespace,
            "-p",
            "8080",
            "--",
            "env",
            "PORT=8080",
            binary,
        ],
    );
    local
        .env("XDG_RUNTIME_DIR", state)
        .env_remove("ORDERS_URL")
        .stdout(Stdio::null());
    let local = Local(local.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while laptop
        .block_on(reqwest::get("http://127.0.0.1:8080/healthz"))
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the local payments service did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    local
}

/// `tether workshop -o json` again until step `n` passes (a forward follows a restarted
/// container within moments), or the last report after `within`.
fn until_step_passes(
    laptop: &Laptop,
    repo: &Path,
    state: &Path,
    n: usize,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let report = workshop(laptop, repo, state, &[]);
        if report["steps"][n - 1]["passed"] == true || Instant::now() >= deadline {
            return report;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn every_step_typed_in_order_passes_and_leave_restores_the_cluster() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = SHOP.lock().unwrap_or_else(|e| e.into_inner());
    // The connect agent is shared with the connect tests, which uninstall it.
    let _connect = crate::connect::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let repo = repo_copy();
    let shop = repo.path().join("examples/shop");
    let users = shop.join("users");
    let _down = DownOnPanic::new(&shop, Some(laptop.clone()));
    let _users_down = DownOnPanic::new(&users, Some(laptop.clone()));
    let state = tempfile::tempdir().unwrap();
    let state = state.path();

    // Step 1: the cluster answers and its context is allowed.
    let report = workshop(&laptop, repo.path(), state, &[]);
    passed_through(&report, 1);
    assert_eq!(report["current"], 2, "{report:#}");

    // Step 2: `tether up` in users serves on 8001; the greeting is not edited yet.
    let mut up = Running::spawn(laptop.tether(&users, &["up", "--no-tui"]));
    up.wait_for(0, Duration::from_secs(900), "users' forward", |l| {
        l.contains("forward http://localhost:8001 -> ") && l.contains("healthy")
    });
    up.wait_for(0, Duration::from_secs(60), "the watcher", |l| {
        l.starts_with("watching ")
    });
    let report = workshop(&laptop, repo.path(), state, &[]);
    assert_eq!(report["current"], 2, "{report:#}");
    let detail = report["steps"][1]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(r#"is still "hello from users""#),
        "{report:#}"
    );
    //   The attendee edits GREETING and saves; live update serves it.
    let routes = users.join("src/routes.rs");
    let source = std::fs::read_to_string(&routes).unwrap();
    let shipped = r#"const GREETING: &str = "hello from users";"#;
    assert!(source.contains(shipped), "the users greeting changed");
    let mark = up.mark();
    std::fs::write(
        &routes,
        source.replace(
            shipped,
            r#"const GREETING: &str = "hello from the workshop";"#,
        ),
    )
    .unwrap();
    up.wait_for(mark, Duration::from_secs(600), "the edit served", |l| {
        l.contains("[users] ready: serving the change")
    });
    let report = until_step_passes(&laptop, repo.path(), state, 2, Duration::from_secs(30));
    passed_through(&report, 2);
    assert_eq!(report["current"], 3, "{report:#}");
    //   Ctrl-C, then `tether down` there, as the step says.
    assert!(up.interrupt(), "tether up in users stops on Ctrl-C");
    let out = output(laptop.tether(&users, &["down"]));
    assert!(out.status.success(), "tether down in users");

    // Step 3: the shop deployed once with `up --ci`, then `tether up` for the forwards
    // (gateway 8000).
    let out = output(laptop.tether(&shop, &["up", "--ci", "--timeout", "900"]));
    assert!(out.status.success(), "tether up --ci in examples/shop");
    let mut up = Running::spawn(laptop.tether(&shop, &["up", "--no-tui"]));
    up.wait_for(0, Duration::from_secs(300), "the gateway's forward", |l| {
        l.contains("forward http://localhost:8000 -> ") && l.contains("healthy")
    });
    laptop.run(|| crate::support::wait_for_shop(GATEWAY));
    let flawed = walkthrough(&laptop, &shop);
    assert!(
        second_payment(&flawed).contains("HTTP 201"),
        "the shipped flaw pays twice"
    );
    let original = rt.block_on(payments_specs(&cluster.client));
    // Step 2's forward is gone on purpose: it stays done.
    let report = workshop(&laptop, repo.path(), state, &[]);
    passed_through(&report, 3);
    assert_eq!(report["current"], 4, "{report:#}");
    assert_eq!(report["all_passed"], false);

    // Step 4: connect; the laptop reaches the cluster's Services by name.
    let mut connect = laptop.tether(&shop, &["connect", "-n", "api", "-o", "json"]);
    connect.env("XDG_RUNTIME_DIR", state);
    let mut connect = Running::spawn(connect);
    connect.wait_for(0, Duration::from_secs(300), "tether connect", |l| {
        l.contains("\"connected\":true")
    });
    let mut probe = laptop.command("curl");
    probe.args([
        "-sS",
        "--max-time",
        "10",
        "--proxy",
        "socks5h://127.0.0.1:1080",
        "http://orders-svc/healthz",
    ]);
    assert!(
        output(probe).status.success(),
        "orders-svc through connect's proxy"
    );
    passed_through(&workshop(&laptop, repo.path(), state, &[]), 4);

    // Step 5: the fixed payments service on the laptop under `tether run`.
    let binary = fixed_payments(repo.path());
    let _local = run_payments(&laptop, repo.path(), state, "api", &binary);
    passed_through(&workshop(&laptop, repo.path(), state, &[]), 5);

    // Steps 6 and 7: the intercept; the gateway in the cluster now reaches the laptop's
    // payments, and the second payment is refused.
    let mut intercept = Running::spawn(laptop.tether(
        &shop,
        &[
            "intercept",
            "payments-svc",
            "--port",
            "8080",
            "--namespace",
            "api",
        ],
    ));
    intercept.wait_for(0, Duration::from_secs(900), "the intercept", |l| {
        l.starts_with("ready: ")
    });
    let fixed = walkthrough(&laptop, &shop);
    let refused = second_payment(&fixed);
    assert!(refused.contains("HTTP 403"), "{refused}");
    assert!(refused.contains("Already Paid"), "{refused}");
    let report = workshop(&laptop, repo.path(), state, &[]);
    passed_through(&report, 7);
    assert_eq!(report["current"], 8, "{report:#}");

    // Step 8: leave; the cluster serves again, specs exactly as before.
    let out = output(laptop.tether(&shop, &["leave", "payments-svc", "--namespace", "api"]));
    assert!(out.status.success(), "tether leave failed");
    intercept.interrupt();
    drop(intercept);
    assert_eq!(rt.block_on(payments_specs(&cluster.client)), original);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // The rollout back to the original pods may take a moment.
        let again = walkthrough(&laptop, &shop);
        if second_payment(&again).contains("HTTP 201") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster's payments did not serve again"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    // Every step done: the workshop says so, also for the steps `leave` ended.
    let report = workshop(&laptop, repo.path(), state, &[]);
    assert_eq!(report["all_passed"], true, "{report:#}");

    let mut quit = laptop.tether(&shop, &["connect", "--quit"]);
    quit.env("XDG_RUNTIME_DIR", state);
    assert!(output(quit).status.success());
    assert!(connect.exited_within(Duration::from_secs(10)).is_some());
    assert!(up.interrupt());
    let out = output(laptop.tether(&shop, &["down"]));
    assert!(out.status.success());
}

/// A step broken on purpose: the local payments service of step 5 stops. The workshop,
/// shown at that step, names it with what is wrong and the fix, in JSON and in words.
#[test]
fn a_stopped_local_payments_service_fails_its_step_with_the_fix() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(_cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let _turn = SHOP.lock().unwrap_or_else(|e| e.into_inner());
    let _connect = crate::connect::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let repo = repo_copy();
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let binary = fixed_payments(repo.path());

    // It runs as step 5 says (in a namespace every cluster has: the step's checks are
    // the local port and its /healthz).
    let local = run_payments(&laptop, repo.path(), state, "default", &binary);
    let report = workshop(&laptop, repo.path(), state, &["--step", "5"]);
    assert_eq!(report["current"], 5, "{report:#}");
    assert_eq!(report["steps"][4]["passed"], true, "{report:#}");

    drop(local);
    let report = workshop(&laptop, repo.path(), state, &["--step", "5"]);
    let broken = &report["steps"][4];
    assert_eq!(broken["passed"], false, "{report:#}");
    assert!(
        broken["detail"]
            .as_str()
            .is_some_and(|d| d.contains("nothing accepts on localhost:8080")),
        "{report:#}"
    );
    assert!(
        broken["fix"]
            .as_str()
            .is_some_and(|f| f.contains("tether run -n api -p 8080")),
        "{report:#}"
    );
    // Without a terminal: the step's line, what is wrong, the fix, then its commands.
    let mut plain = laptop.tether(
        &repo.path().join("workspace-demo"),
        &["workshop", "--no-tui", "--step", "5"],
    );
    plain.env("XDG_RUNTIME_DIR", state);
    let text = String::from_utf8_lossy(&output(plain).stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("✗ 5. "))
        .unwrap_or_else(|| panic!("step 5 is marked failed: {text}"));
    assert!(line.contains("localhost:8080"), "{line}");
    assert!(
        line.contains("fix: start the payments service under tether run"),
        "{line}"
    );
    assert!(
        text.contains("== 5. payments runs locally on 8080"),
        "{text}"
    );
    assert!(
        text.contains("PORT=8080 tether run -n api -p 8080"),
        "{text}"
    );
}
