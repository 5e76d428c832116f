//! `tether-agent supervise` and `tether-agent copy-self` as the pod runs them: the real
//! binary, its exit code and signals, on this machine (no cluster).

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

const AGENT: &str = env!("CARGO_BIN_EXE_tether-agent");
/// How long a supervisor in these tests may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(20);

/// `tether-agent supervise` with a state directory in `state`, running `sh -c SCRIPT`.
fn supervise(state: &Path, script: &str) -> Command {
    let mut command = Command::new(AGENT);
    command
        .args(["supervise", "--control", "0", "--state"])
        .arg(state)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .env("TETHER_LIVE_TOKEN", "s3cret");
    command
}

/// Waits for `child` to exit, killing it past [`LIMIT`].
fn wait(mut child: Child) -> ExitStatus {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if began.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("the supervisor did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_supervisor_exits_with_the_apps_code() {
    let state = tempfile::tempdir().unwrap();
    let status = wait(supervise(state.path(), "exit 3").spawn().unwrap());
    assert_eq!(status.code(), Some(3));
    let status = wait(supervise(state.path(), "kill -9 $$").spawn().unwrap());
    assert_eq!(status.code(), Some(128 + 9), "a signal is 128 + its number");
    assert!(
        state.path().join("blobs").is_dir(),
        "the state directory was opened"
    );
}

#[test]
fn the_token_is_not_in_the_apps_environment() {
    let state = tempfile::tempdir().unwrap();
    let script = r#"[ -z "$TETHER_LIVE_TOKEN" ] && [ "$KEPT" = yes ] && exit 4; exit 5"#;
    let status = wait(
        supervise(state.path(), script)
            .env("KEPT", "yes")
            .spawn()
            .unwrap(),
    );
    assert_eq!(status.code(), Some(4));
}

#[test]
fn sigterm_goes_to_the_app_and_the_supervisor_exits_after_it() {
    let state = tempfile::tempdir().unwrap();
    let ready = state.path().join("ready");
    let script = format!(
        "trap 'exit 7' TERM; touch {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let child = supervise(state.path(), &script).spawn().unwrap();
    let began = Instant::now();
    while !ready.exists() {
        assert!(began.elapsed() < LIMIT, "the app never set its trap");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(wait(child).code(), Some(7));
}

#[test]
fn bad_arguments_and_an_app_that_cannot_start_have_codes_of_their_own() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(AGENT)
        .args(["supervise", "--control", "0", "/users"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "argv must follow --");
    let out = Command::new(AGENT)
        .args(["supervise", "--control", "0", "--state"])
        .arg(state.path())
        .args(["--", "/no/such/app"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tether supervise: cannot start the app `/no/such/app`"),
        "{stderr}"
    );
}

#[test]
fn copy_self_puts_this_binary_at_dest() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mount/bin/tether-agent");
    let status = Command::new(AGENT)
        .args(["copy-self"])
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(AGENT).unwrap());
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    let out = Command::new(&dest).arg("--version").output().unwrap();
    assert!(out.status.success(), "the copy runs");
}
