//! The supervisor in-process: a real app (a shell script it runs), laptops over
//! `tokio::io::duplex` speaking through [`tether::live::Supervisor`], and the state
//! directory and targets in temporary directories.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use tempfile::TempDir;
use tokio::{io::AsyncWriteExt, sync::mpsc, task::JoinHandle};

use super::{
    SuperviseConfig, Supervision,
    reaper::{Exit, Reaper},
    store::Store,
};
use tether::live::{FileUpdate, LiveError, RunStep, Supervisor, Update};

use crate::{
    tunnel::{Heartbeat, HelloMeta, Role, Session, Side},
    wire::{self, APPLY_TARGET, FileHeader, TOKEN_ENV},
};

const TOKEN: &str = "live-s3cret";
/// How long anything in these tests may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(20);

/// An app script that stays up (as `sleep`, so a restart's SIGTERM ends it at once).
const IDLE: &str = "exec sleep 600\n";

/// A pod with the supervisor running `/bin/sh DIR/app.sh`.
struct Pod {
    /// The app's files; also `$DIR` in the app's environment.
    dir: TempDir,
    state: TempDir,
    supervision: Supervision,
    keeper: Option<JoinHandle<Exit>>,
    signal_tx: mpsc::UnboundedSender<i32>,
}

impl Pod {
    async fn start(token: Option<&str>, script: &str) -> Pod {
        Pod::start_with(token, script, |_| {}).await
    }

    async fn start_with(
        token: Option<&str>,
        script: &str,
        tweak: impl FnOnce(&mut SuperviseConfig),
    ) -> Pod {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.sh"), script).unwrap();
        let argv = vec![
            "/bin/sh".into(),
            dir.path().join("app.sh").display().to_string(),
        ];
        let mut config = SuperviseConfig::new(
            argv,
            state.path().to_owned(),
            env(dir.path(), token),
            Duration::from_secs(5),
        );
        tweak(&mut config);
        Pod::run(dir, state, config)
    }

    fn run(dir: TempDir, state: TempDir, config: SuperviseConfig) -> Pod {
        let reaper = Reaper::start(false).unwrap();
        let (supervision, keeper, _) = Supervision::start(config, reaper).unwrap();
        let (signal_tx, signal_rx) = mpsc::unbounded_channel();
        let keeper = Some(tokio::spawn(keeper.run(signal_rx)));
        Pod {
            dir,
            state,
            supervision,
            keeper,
            signal_tx,
        }
    }

    /// A laptop attached with `token`.
    async fn laptop(&self, token: &str) -> Result<Supervisor, LiveError> {
        let (pod_end, laptop_end) = tokio::io::duplex(256 * 1024);
        let supervision = self.supervision.clone();
        tokio::spawn(async move { supervision.attach(pod_end).await });
        tokio::time::timeout(LIMIT, Supervisor::attach(laptop_end, token))
            .await
            .expect("the attach ends")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// How the keeper ended: the code the supervisor exits with.
    async fn exit(mut self) -> Exit {
        let keeper = self.keeper.take().expect("the keeper is taken once");
        tokio::time::timeout(LIMIT, keeper)
            .await
            .expect("the app exits")
            .unwrap()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // The app must not outlive its test.
        if let Some(pid) = self.supervision.state().child_pid {
            super::reaper::send_group(pid, libc::SIGKILL);
        }
    }
}

/// This process's environment, `DIR`, and the token if any.
fn env(dir: &Path, token: Option<&str>) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k != TOKEN_ENV && k != "DIR")
        .collect();
    env.push(("DIR".into(), dir.as_os_str().to_owned()));
    if let Some(token) = token {
        env.push((TOKEN_ENV.into(), token.into()));
    }
    env
}

fn file(path: &str, content: &'static [u8]) -> FileUpdate {
    FileUpdate {
        path: path.into(),
        mode: 0o644,
        content: Bytes::from_static(content),
    }
}

fn step(args: &[&str]) -> RunStep {
    RunStep {
        argv: args.iter().map(|s| s.to_string()).collect(),
    }
}

/// A port nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn apply(laptop: &Supervisor, update: &Update) -> Result<wire::Applied, LiveError> {
    tokio::time::timeout(LIMIT, laptop.apply(update))
        .await
        .expect("the update is answered")
}

#[tokio::test]
async fn an_applied_file_is_written_stored_and_reported() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let before = laptop.state().await.unwrap();
    assert_eq!(before.generation, 0);
    assert!(before.child_pid.is_some());
    assert_eq!(before.version, env!("CARGO_PKG_VERSION"));

    let index = pod.path("www/index.html");
    let applied = apply(
        &laptop,
        &Update {
            generation: 1,
            files: vec![file(&index, b"<h1>v1</h1>\n")],
            ..Update::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(applied.generation, 1);
    assert_eq!(applied.restarted, None);
    assert!(applied.runs.is_empty());
    assert_eq!(std::fs::read(&index).unwrap(), b"<h1>v1</h1>\n");
    let sha = wire::sha256_hex(b"<h1>v1</h1>\n");
    assert!(pod.state.path().join("blobs").join(&sha).exists(), "stored");

    let after = laptop.state().await.unwrap();
    assert_eq!(after.generation, 1);
    assert_eq!(after.files.get(&index), Some(&sha));
    assert_eq!(
        after.child_pid, before.child_pid,
        "no restart was asked for"
    );
    assert_eq!(after.restarts, 0);
}

#[tokio::test]
async fn a_restart_starts_a_new_process_that_runs_the_synced_code() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let old = laptop.state().await.unwrap().child_pid.unwrap();
    let update = Update {
        generation: 2,
        files: vec![file(
            &pod.path("app.sh"),
            b"echo v2 > \"$DIR/ran\"\nexec sleep 600\n",
        )],
        restart: true,
        ..Update::default()
    };
    let applied = apply(&laptop, &update).await.unwrap();
    assert!(applied.restarted.is_some());
    let state = laptop.state().await.unwrap();
    let new = state.child_pid.unwrap();
    assert_ne!(new, old);
    assert_eq!(state.restarts, 1);
    let ran = pod.path("ran");
    tokio::time::timeout(LIMIT, async {
        while std::fs::read_to_string(&ran).ok().as_deref() != Some("v2\n") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the new process runs the synced script");
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_the_supervisors_reason() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    match pod.laptop("not-the-token").await {
        Err(LiveError::Refused { reason }) => {
            assert!(reason.contains("wrong or missing attach token"), "{reason}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let tokenless = Pod::start(None, IDLE).await;
    match tokenless.laptop("").await {
        Err(e @ LiveError::Refused { .. }) => {
            assert!(e.to_string().contains(TOKEN_ENV), "{e}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_failed_step_stops_the_update_with_its_output_and_the_files_stay() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let old = laptop.state().await.unwrap().child_pid;
    let src = pod.path("src/main.c");
    let update = Update {
        generation: 5,
        files: vec![file(&src, b"int main() { return }\n")],
        run: vec![
            step(&["sh", "-c", "echo compiling \"$(cat $DIR/src/main.c)\""]),
            step(&[
                "sh",
                "-c",
                "echo building; echo 'main.c:1: error' >&2; exit 2",
            ]),
            step(&["touch", &pod.path("never")]),
        ],
        restart: true,
        ..Update::default()
    };
    match apply(&laptop, &update).await {
        Err(LiveError::RunFailed { argv, code, output }) => {
            assert_eq!(argv[0], "sh");
            assert_eq!(code, Some(2));
            assert_eq!(output, "building\nmain.c:1: error\n");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&src).unwrap(), b"int main() { return }\n");
    assert!(
        !Path::new(&pod.path("never")).exists(),
        "later steps did not run"
    );
    let state = laptop.state().await.unwrap();
    assert_eq!(state.generation, 5, "the files are applied");
    assert_eq!(state.child_pid, old, "no restart after a failed step");

    let ok = apply(
        &laptop,
        &Update {
            generation: 6,
            run: vec![step(&["sh", "-c", "echo fine"])],
            ..Update::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ok.runs.len(), 1);
    assert_eq!(
        (ok.runs[0].code, ok.runs[0].output.as_str()),
        (Some(0), "fine\n")
    );
}

#[tokio::test]
async fn an_unwritable_target_fails_the_update_and_names_it() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let ok = pod.path("ok.txt");
    // sysfs takes no new files, also from root.
    let update = Update {
        generation: 1,
        files: vec![
            file(&ok, b"fine"),
            file("/sys/tether-live-test/app.conf", b"x"),
        ],
        ..Update::default()
    };
    match apply(&laptop, &update).await {
        Err(e @ LiveError::NotWritable { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("cannot write /sys/tether-live-test/app.conf"),
                "{text}"
            );
            assert!(text.contains("or be the program itself"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!Path::new(&ok).exists(), "all or nothing");
    assert_eq!(laptop.state().await.unwrap().generation, 0);
}

#[tokio::test]
async fn an_update_cut_short_writes_nothing() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let target = pod.path("big.bin");
    // A laptop that goes away in the middle of the bytes.
    let (pod_end, laptop_end) = tokio::io::duplex(256 * 1024);
    let supervision = pod.supervision.clone();
    tokio::spawn(async move { supervision.attach(pod_end).await });
    let meta = HelloMeta {
        role: Role::Laptop,
        token: TOKEN.into(),
        ..HelloMeta::default()
    };
    let session = Session::start(laptop_end, Side::Dialer, meta, Heartbeat::default())
        .await
        .unwrap();
    let mut stream = session.opener().open(APPLY_TARGET).unwrap();
    let header = wire::ApplyHeader {
        generation: 9,
        files: vec![FileHeader {
            path: target.clone(),
            mode: 0o644,
            len: 1000,
        }],
        ..wire::ApplyHeader::default()
    };
    stream.write_all(&wire::line(&header)).await.unwrap();
    stream.write_all(&[7u8; 400]).await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);

    // Updates run one at a time: once the next is answered, the cut one is done.
    let laptop = pod.laptop(TOKEN).await.unwrap();
    apply(&laptop, &Update::default()).await.unwrap();
    assert!(!Path::new(&target).exists());
    let left: Vec<_> = std::fs::read_dir(pod.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["app.sh"], "no temporary file stays");
    assert!(laptop.state().await.unwrap().files.is_empty());
}

#[tokio::test]
async fn a_restarted_app_that_dies_before_its_ports_answer_ends_the_supervisor() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let update = Update {
        generation: 3,
        files: vec![file(&pod.path("app.sh"), b"echo crashing >&2\nexit 5\n")],
        restart: true,
        wait_ports: vec![free_port()],
        ..Update::default()
    };
    match apply(&laptop, &update).await {
        Err(LiveError::ChildExited { code }) => assert_eq!(code, 5),
        other => panic!("{other:?}"),
    }
    assert_eq!(pod.exit().await, Exit::Code(5));
}

#[tokio::test]
async fn ports_that_never_answer_are_not_ready() {
    let pod = Pod::start_with(Some(TOKEN), IDLE, |c| {
        c.ports_timeout = Duration::from_millis(300)
    })
    .await;
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let port = free_port();
    let update = Update {
        generation: 1,
        wait_ports: vec![port],
        ..Update::default()
    };
    match apply(&laptop, &update).await {
        Err(LiveError::NotReady { ports, after }) => {
            assert_eq!(ports, [port]);
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_update_waits_until_the_restarted_app_listens() {
    if !Path::new("/usr/bin/busybox").exists() && !Path::new("/bin/busybox").exists() {
        eprintln!("no busybox here: its nc is the listening app of this test");
        return;
    }
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let port = free_port();
    let script = format!("sleep 0.2\nexec busybox nc -ll -p {port} -e true\n");
    let update = Update {
        generation: 1,
        files: vec![FileUpdate {
            path: pod.path("app.sh"),
            mode: 0o644,
            content: Bytes::from(script),
        }],
        restart: true,
        wait_ports: vec![port],
        ..Update::default()
    };
    let applied = apply(&laptop, &update).await.unwrap();
    let restarted = applied.restarted.unwrap();
    assert!(
        restarted >= Duration::from_millis(200),
        "{restarted:?}: it waited for the port"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

#[tokio::test]
async fn the_program_runs_from_its_stored_copy_where_it_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // procfs takes no new files, also from root: a read-only root filesystem's `/users`.
    let program = format!("/proc/tether-live-test-{}/users", std::process::id());
    // No `exec`: the shell's command line names the file it runs.
    let v1: &[u8] = b"#!/bin/sh\nsleep 600\n";
    // A previous container synced v1; this one starts from the stored copy.
    {
        let (mut store, _) = Store::open(state.path()).unwrap();
        let resolved = super::program::Program::resolve(&program, None, Path::new("/"));
        let header = wire::ApplyHeader {
            generation: 1,
            files: vec![FileHeader {
                path: program.clone(),
                mode: 0o755,
                len: v1.len() as u64,
            }],
            ..wire::ApplyHeader::default()
        };
        let mut staging = store.stage(&header, &resolved).unwrap();
        staging.write(0, v1).unwrap();
        assert!(store.commit(staging, 1, &resolved).unwrap().program_stored);
    }
    let config = SuperviseConfig::new(
        vec![program.clone()],
        state.path().to_owned(),
        env(dir.path(), Some(TOKEN)),
        Duration::from_secs(5),
    );
    let pod = Pod::run(dir, state, config);
    let laptop = pod.laptop(TOKEN).await.unwrap();
    let first = laptop.state().await.unwrap();
    assert_eq!(first.files.get(&program), Some(&wire::sha256_hex(v1)));
    assert!(runs_blob(first.child_pid.unwrap(), &wire::sha256_hex(v1)).await);

    let v2: &'static [u8] = b"#!/bin/sh\necho v2\nsleep 600\n";
    let update = Update {
        generation: 2,
        files: vec![FileUpdate {
            path: program.clone(),
            mode: 0o755,
            content: Bytes::from_static(v2),
        }],
        restart: true,
        ..Update::default()
    };
    apply(&laptop, &update).await.unwrap();
    let second = laptop.state().await.unwrap();
    assert_ne!(second.child_pid, first.child_pid);
    assert!(runs_blob(second.child_pid.unwrap(), &wire::sha256_hex(v2)).await);
}

/// Whether process `pid` runs the stored copy named `sha`: a script's path is its
/// interpreter's argument.
async fn runs_blob(pid: u32, sha: &str) -> bool {
    // A process just started may not show its arguments yet: the spawn returns once the
    // new program is mapped, a moment before its arguments are laid out.
    let cmdline = tokio::time::timeout(LIMIT, async {
        loop {
            let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !bytes.is_empty() {
                return String::from_utf8_lossy(&bytes).into_owned();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the process shows its command line");
    cmdline.contains(&format!("blobs/{sha}"))
}

#[tokio::test]
async fn the_app_exiting_on_its_own_ends_the_keeper_with_its_code() {
    let pod = Pod::start(Some(TOKEN), "exit 3\n").await;
    assert_eq!(pod.exit().await, Exit::Code(3));
    let killed = Pod::start(Some(TOKEN), "kill -9 $$\n").await;
    assert_eq!(killed.exit().await.code(), 137);
}

#[tokio::test]
async fn signals_are_passed_on_to_the_app() {
    let script = "trap 'exit 7' TERM\ntouch \"$DIR/ready\"\nwhile :; do sleep 0.05; done\n";
    let pod = Pod::start(Some(TOKEN), script).await;
    let ready: PathBuf = pod.dir.path().join("ready");
    tokio::time::timeout(LIMIT, async {
        while !ready.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the app sets its trap");
    pod.signal_tx.send(libc::SIGTERM).unwrap();
    assert_eq!(pod.exit().await, Exit::Code(7));
}

#[tokio::test]
async fn updates_from_two_laptops_run_one_after_the_other() {
    let pod = Pod::start(Some(TOKEN), IDLE).await;
    let (a, b) = (
        pod.laptop(TOKEN).await.unwrap(),
        pod.laptop(TOKEN).await.unwrap(),
    );
    let log = pod.path("log");
    let slow = |n: &str| Update {
        generation: 1,
        run: vec![step(&[
            "sh",
            "-c",
            &format!("echo {n}-in >> {log}; sleep 0.2; echo {n}-out >> {log}"),
        ])],
        ..Update::default()
    };
    let (ua, ub) = (slow("a"), slow("b"));
    let (ra, rb) = tokio::join!(apply(&a, &ua), apply(&b, &ub));
    ra.unwrap();
    rb.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines == ["a-in", "a-out", "b-in", "b-out"] || lines == ["b-in", "b-out", "a-in", "a-out"],
        "{lines:?}"
    );
}
