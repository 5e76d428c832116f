//! The workshop, end to end: the shop deployed by `tether up`, the fixed payments service
//! running on the developer's laptop, `tether intercept payments-svc` routing the cluster's
//! payments traffic to it, and through the gateway in the cluster the second payment of an
//! order is refused with 403. After `tether leave` the cluster's own payments pods serve
//! again (and pay twice again), and the Service and Deployment specs equal the originals
//! exactly.
//!
//! Everything the developer runs (`tether up`, `intercept`, `leave`, `down`, the fixed
//! payments service, the walkthrough's `curl`s) runs in the laptop namespace of
//! [`Laptop`]: up's forwards (gateway 8000, orders 8003) are on the laptop's loopback, and
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

/// `tether workshop -o json` as the attendee runs it on the laptop, beside their
/// connect session (`state`): the report of every step.
fn workshop(laptop: &Laptop, repo: &Path, state: &Path) -> serde_json::Value {
    let mut c = laptop.tether(&repo.join("workspace-demo"), &["workshop", "-o", "json"]);
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

#[test]
fn the_intercepted_fix_refuses_the_second_payment_and_leave_restores_the_cluster() {
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
    let _down = DownOnPanic::new(&shop, Some(laptop.clone()));

    // 1. The shop in the cluster, forwarded to the laptop (gateway 8000, orders 8003).
    let mut up = Running::spawn(laptop.tether(&shop, &["up", "--no-tui"]));
    up.wait_for(0, Duration::from_secs(900), "the gateway's forward", |l| {
        l.contains("forward http://localhost:8000 -> ") && l.contains("healthy")
    });
    laptop.run(|| crate::support::wait_for_shop(GATEWAY));
    let flawed = walkthrough(&laptop, &shop);
    assert!(
        second_payment(&flawed).contains("HTTP 201"),
        "the shipped flaw pays twice"
    );
    let original = rt.block_on(payments_specs(&cluster.client));
    // `tether workshop` sees the same: the cluster, users' forward, the shop ready.
    let state = tempfile::tempdir().unwrap();
    let report = workshop(&laptop, repo.path(), state.path());
    passed_through(&report, 3);
    assert_eq!(report["current"], 4, "{report:#}");
    assert_eq!(report["all_passed"], false);

    // 2. Connect: the laptop reaches the cluster's Services by name.
    let mut connect = laptop.tether(&shop, &["connect", "-n", "api", "-o", "json"]);
    connect.env("XDG_RUNTIME_DIR", state.path());
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
    passed_through(&workshop(&laptop, repo.path(), state.path()), 4);

    // 3. The fixed payments service on the laptop, on 8080, calling its default
    //    ORDERS_URL, http://orders-svc.api, as it does in the cluster: `tether run` gives
    //    it the cluster's names and publishes its port on the laptop.
    let build = std::process::Command::new(shop.join("build-static"))
        .args(["payments", "--features", "solution"])
        .current_dir(&shop)
        .env("CARGO_TARGET_DIR", shop_target())
        .status()
        .unwrap();
    assert!(build.success(), "the solution builds");
    let binary = repo.path().join("payments-fixed");
    std::fs::copy(shop.join("payments/.build/payments"), &binary).unwrap();
    let binary = binary.to_string_lossy().into_owned();
    let start_local = || {
        let mut local = laptop.tether(
            &shop,
            &[
                "run",
                "-n",
                "api",
                "-p",
                "8080",
                "--",
                "env",
                "PORT=8080",
                &binary,
            ],
        );
        local
            .env("XDG_RUNTIME_DIR", state.path())
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
    };
    let local = start_local();
    passed_through(&workshop(&laptop, repo.path(), state.path()), 5);

    // 4. Intercept: the gateway in the cluster now reaches the laptop's payments.
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
    let report = workshop(&laptop, repo.path(), state.path());
    passed_through(&report, 7);
    assert_eq!(report["current"], 8, "{report:#}");

    // A step broken on purpose: the local payments service stops. The workshop names
    // that step, what is wrong and the fix, and passes again once it runs.
    drop(local);
    let report = workshop(&laptop, repo.path(), state.path());
    assert_eq!(report["current"], 5, "{report:#}");
    let broken = &report["steps"][4];
    assert_eq!(broken["passed"], false, "{report:#}");
    assert!(
        broken["detail"]
            .as_str()
            .is_some_and(|d| d.contains("8080")),
        "{report:#}"
    );
    assert!(
        broken["fix"]
            .as_str()
            .is_some_and(|f| f.contains("tether run")),
        "{report:#}"
    );
    let _local = start_local();
    passed_through(&workshop(&laptop, repo.path(), state.path()), 7);

    // 5. Leave: the cluster serves again, specs exactly as before.
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
    let report = workshop(&laptop, repo.path(), state.path());
    assert_eq!(report["all_passed"], true, "{report:#}");

    let mut quit = laptop.tether(&shop, &["connect", "--quit"]);
    quit.env("XDG_RUNTIME_DIR", state.path());
    assert!(output(quit).status.success());
    assert!(connect.exited_within(Duration::from_secs(10)).is_some());
    assert!(up.interrupt());
    let out = output(laptop.tether(&shop, &["down"]));
    assert!(out.status.success());
}
