//! The API server going away and coming back, seen from the laptop: while it is gone a
//! client gets an error (not a hang), and `tether connect` reconnects by itself when it
//! returns, and says so.
//!
//! It restarts the cluster's API server, which every other test needs, so it is ignored in
//! the suite and run alone after it (`scripts/test`:
//! `cargo test --test e2e -- --ignored --test-threads=1 api_server`, which also runs the
//! log follower's `observe::logs_follow_across_an_api_server_restart`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    connect::{TURN, connected, deploy, run, tether_cmd},
    support::{TestNamespace, cluster, laptop::Laptop},
};

/// Kills the dev cluster's API server, waits until its process is gone, checks `gone`
/// while it is, and starts it again with `scripts/dev-cluster up`.
pub(crate) fn restart_the_api_server(gone: impl FnOnce()) {
    let run =
        std::env::var("TETHER_CLUSTER_RUN").unwrap_or_else(|_| "/run/tether-dev-cluster".into());
    let pidfile = PathBuf::from(run).join("pids/kube-apiserver.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()))
        .trim()
        .parse()
        .unwrap();
    // Abruptly, as a crash or a lost control plane: a SIGTERM'd API server drains its
    // requests for over a minute first.
    // SAFETY: kill(2) on the pid the cluster script recorded.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "the API server did not stop");
        std::thread::sleep(Duration::from_millis(200));
    }
    gone();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev-cluster");
    let status = Command::new(script).arg("up").status().unwrap();
    assert!(status.success(), "scripts/dev-cluster up brings it back");
}

fn curl(laptop: &Laptop, proxy: &str, url: &str) -> (bool, String) {
    let mut c = laptop.command("curl");
    c.args(["-sS", "--max-time", "10", "--proxy", proxy, url]);
    let out = run(c);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
#[ignore = "restarts the API server: scripts/test runs it alone, after the suite"]
fn connect_reconnects_by_itself_when_the_api_server_comes_back() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let Some(laptop) = Laptop::from_env() else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "restart"));
    rt.block_on(deploy(&cluster.client, &ns.name));
    let state = tempfile::tempdir().unwrap();
    let (mut session, proxy, _) = connected(&laptop, state.path(), &ns.name);
    let proxy = format!("socks5h://{proxy}");
    assert_eq!(
        curl(&laptop, &proxy, "http://web-svc/"),
        (true, "hello from the cluster".to_owned())
    );

    let mark = session.mark();
    restart_the_api_server(|| {
        let started = Instant::now();
        let (ok, _) = curl(&laptop, &proxy, "http://web-svc/");
        assert!(!ok, "no cluster, no answer");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "an error, not a hang until curl's own timeout"
        );
    });
    session.wait_for(mark, Duration::from_secs(180), "the reconnect", |l| {
        l.contains("connect: reconnected to tether-connect-")
    });
    let said = session.since(mark);
    assert!(
        said.iter()
            .any(|l| l.contains("the link to the cluster was lost")),
        "{said:?}"
    );
    // Names resolve and connections go through again, with nothing restarted by hand.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = curl(&laptop, &proxy, "http://web-svc/");
        if answer == (true, "hello from the cluster".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "not served again: {answer:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let quit = run(tether_cmd(&laptop, state.path(), &["connect", "--quit"]));
    assert!(quit.status.success());
}
