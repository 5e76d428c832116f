//! Running the real `tether` binary the way a developer does, and reading what it prints.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// `tether ARGS` in `dir`, run to completion.
pub fn tether(dir: &Path, args: &[&str]) -> Output {
    output(command(dir, args))
}

/// Runs a prepared `tether` command to completion, printing what it printed.
pub fn output(mut c: Command) -> Output {
    let out = c.output().expect("tether runs");
    let args: Vec<_> = c.get_args().map(|a| a.to_string_lossy()).collect();
    let dir = c.get_current_dir().unwrap_or(Path::new("."));
    eprintln!(
        "$ tether {} (in {})\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a finished command printed, stdout then stderr, as the user saw it.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn command(dir: &Path, args: &[&str]) -> Command {
    prepare(Command::new(env!("CARGO_BIN_EXE_tether")), dir, args)
}

/// `base` (a command for the tether binary, such as one the laptop namespace runs) set
/// up as [`command`] sets up its own: `ARGS`, `dir`, no stdin, the shop's target folder.
pub fn prepare(mut base: Command, dir: &Path, args: &[&str]) -> Command {
    // No terminal: signals a test sends reach tether alone, as they would from a script.
    base.args(args).current_dir(dir).stdin(Stdio::null());
    base.env("CARGO_TARGET_DIR", shop_target());
    // A suite started in the background of a shell ignores SIGINT and SIGQUIT, and ignored
    // signals pass to every child: give tether (and so what it runs) the dispositions a
    // developer's terminal gives, so the Ctrl-C the tests send means what it means there.
    // SAFETY: the hook runs between fork and exec and makes two signal(2) calls.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut base, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    base
}

/// The shop's static builds get a target folder of their own: the test binary's cargo may
/// still hold the default one.
pub fn shop_target() -> PathBuf {
    let cache = std::env::var("TETHER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tether")
        });
    cache.join("shop-target")
}

/// A long-running `tether up`, its output collected line by line.
pub struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    pub fn start(dir: &Path, args: &[&str]) -> Running {
        Running::spawn(command(dir, args))
    }

    /// Runs `command` (any program, set up as the caller likes), collecting its output.
    pub fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tether starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    eprintln!("  | {line}");
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Running { child, lines }
    }

    #[allow(dead_code)] // for benches/idle.rs, which shares this file
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many lines were printed so far: a mark to search after.
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The lines printed after `mark`.
    pub fn since(&self, mark: usize) -> Vec<String> {
        self.lines.lock().unwrap()[mark..].to_vec()
    }

    /// Waits for a line after `mark` that satisfies `pred`, and returns it. A failure
    /// reported meanwhile ends the wait at once.
    pub fn wait_for(
        &mut self,
        mark: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.since(mark);
            if let Some(l) = lines.iter().find(|l| pred(l)) {
                return l.clone();
            }
            if let Some(failed) = lines.iter().find(|l| l.contains(" FAILED")) {
                panic!("waiting for {what}, tether reported: {failed}");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tether exited ({status}) while waiting for {what}");
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; its status if it did.
    #[allow(dead_code)] // for benches/idle.rs, which shares this file
    pub fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C, as a developer stops it; returns whether it exited by itself in time.
    pub fn interrupt(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A copy of this repository (sources only) to edit freely: the shop's crates stay in
/// their workspace, as in a real checkout.
pub fn repo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for item in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "crates",
        "tests",
        "benches",
        "examples",
        "workspace-demo",
    ] {
        copy(&root.join(item), &dir.path().join(item));
    }
    dir
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        let name = from.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(name, "target" | ".build" | ".tether" | ".git") {
            return;
        }
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else if from.exists() {
        std::fs::copy(from, to).unwrap();
    }
}
