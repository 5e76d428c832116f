//! The TUI of `tether up` in a real terminal (tmux), against the real cluster: it shows the
//! users resource ready, `r` rebuilds, `tether status -o json` and `tether logs users -f`
//! talk to it from another terminal, and `q` then `k` exits leaving the terminal restored.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    process::{repo_copy, tether},
    support::{cluster, unique},
    up::{DownOnPanic, SHOP},
};

/// A tmux server of the test's own, so the terminal and its environment are the test's.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        let t = Tmux {
            socket: format!("tether-e2e-{}", unique()),
        };
        let ok = Command::new("tmux")
            .args([
                "-L",
                &t.socket,
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
                "-c",
            ])
            .arg(dir)
            .arg(command)
            .status()
            .expect("tmux is installed (scripts/test installs it)");
        assert!(ok.success(), "tmux could not start");
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    fn keys(&self, keys: &str) {
        self.run(&["send-keys", keys]);
    }

    /// Waits until the screen, with spaces removed (tmux redraws only changed cells),
    /// contains every one of `words`.
    fn wait_for_screen(&self, words: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            let flat: String = screen.chars().filter(|c| !c.is_whitespace()).collect();
            if words.iter().all(|w| flat.contains(&w.replace(' ', ""))) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {words:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn status_json(dir: &Path) -> serde_json::Value {
    let out = tether(dir, &["status", "-o", "json"]);
    assert!(out.status.success(), "tether status failed");
    serde_json::from_slice(&out.stdout).expect("status -o json prints JSON")
}

fn users_last_build(status: &serde_json::Value) -> serde_json::Value {
    status["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "users"))
        .map(|r| r["last_build_ms"].clone())
        .expect("users is in the status")
}

#[test]
fn the_tui_shows_ready_rebuilds_on_r_serves_status_and_logs_and_quits_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(_cluster) = rt.block_on(cluster()) else {
        return;
    };
    let _turn = SHOP.lock().unwrap_or_else(|e| e.into_inner());
    let repo = repo_copy();
    let users = repo.path().join("examples/shop/users");
    let _down = DownOnPanic::new(&users, None);
    let exit_file = repo.path().join("exit-code");
    let command = format!(
        "CARGO_TARGET_DIR={target} {bin} up; echo $? > {exit}; sleep 60",
        target = crate::process::shop_target().display(),
        bin = env!("CARGO_BIN_EXE_tether"),
        exit = exit_file.display()
    );
    let tmux = Tmux::start(&users, &command);

    // From another terminal: status (once the control socket is there) and logs.
    let deadline = Instant::now() + Duration::from_secs(600);
    let before = loop {
        let ready = users
            .join(".tether/control.sock")
            .exists()
            .then(|| status_json(&users));
        match ready {
            Some(s) if s["all_ready"] == true => break s,
            _ => assert!(Instant::now() < deadline, "users never became ready"),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let screen = tmux.wait_for_screen(&["users"], Duration::from_secs(5));
    let users_row = screen
        .lines()
        .find(|l| l.contains("users"))
        .unwrap_or_default();
    assert!(
        users_row.contains("ready"),
        "the users row shows ready:\n{screen}"
    );
    let mut follow = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["logs", "users", "-f"])
        .current_dir(&users)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    // A request that the users service logs, made after `logs -f` started.
    let marker = format!("/no-such-page-{}", unique());
    let _ = rt.block_on(reqwest::get(format!("http://127.0.0.1:8001{marker}")));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = line_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("tether logs users -f shows the new request");
        if line.contains(&marker) {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();

    // Move to users (the list starts at shop-base), then `r` rebuilds it.
    tmux.keys("j");
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys("r");
    tmux.wait_for_screen(&["rebuild of users queued"], Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = status_json(&users);
        let r = now["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == "users"))
            .cloned();
        if users_last_build(&now) != users_last_build(&before)
            && r.is_some_and(|r| r["deploy"] == "ready")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no rebuild after `r`: {now}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Quit, keeping what is deployed: exit 0 and the terminal restored.
    tmux.keys("q");
    tmux.wait_for_screen(&["keep"], Duration::from_secs(10));
    tmux.keys("k");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exit_file.exists() {
        assert!(
            Instant::now() < deadline,
            "tether up did not exit after q, k"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "0");
    assert_eq!(
        tmux.run(&["display-message", "-p", "#{alternate_on}"])
            .trim(),
        "0",
        "alternate screen left"
    );
    assert_eq!(
        tmux.run(&["display-message", "-p", "#{cursor_flag}"])
            .trim(),
        "1",
        "cursor shown"
    );

    let out = tether(&users, &["down"]);
    assert!(out.status.success());
}
