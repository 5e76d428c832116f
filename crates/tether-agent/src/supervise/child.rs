//! The app's process: started with the app's environment and tether's stdout and stderr
//! (so `kubectl logs` shows it), restarted when an update asks, sent the signals the
//! supervisor gets. [`Keeper::run`] owns the process; it ends when the app exits on its
//! own, with that exit, which the supervisor then exits with, so the kubelet sees the crash.
//! Others read the process's [`ChildStatus`] from a watch and ask for restarts through
//! [`Restarts`].

use std::{
    ffi::OsString,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot, watch};

use super::{
    error::SuperviseError,
    program::Program,
    reaper::{self, Exit, Reaper},
};

/// How long a killed app may take to be reaped before the restart gives up on it: SIGKILL
/// is not ignorable, so only a process stuck in the kernel takes this long.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What others see of the app's process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildStatus {
    /// The running process; `None` while it is restarted and after it exited.
    pub pid: Option<u32>,
    /// Restarts updates asked for.
    pub restarts: u32,
    /// The process that exited on its own (the supervisor exits next), and how.
    pub exited: Option<(u32, Exit)>,
}

/// How to start the app.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub program: Program,
    pub argv: Vec<String>,
    pub env: Vec<(OsString, OsString)>,
    /// How long the app has to stop after SIGTERM on a restart.
    pub grace: Duration,
}

impl ChildSpec {
    /// The command that starts the app from `exec` (the program, or its stored copy), with
    /// argv\[0\] as given either way.
    fn command(&self, exec: Option<&std::path::Path>) -> Command {
        let mut command = Command::new(self.program.exec_path(exec));
        command
            .arg0(&self.program.argv0)
            .args(self.argv.iter().skip(1))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            // Its own group, so a restart stops what it started too (and frees its ports).
            .process_group(0);
        command
    }
}

/// A restart the app went through.
#[derive(Debug, Clone, Copy)]
pub struct Restarted {
    pub pid: u32,
    /// When the old process was sent SIGTERM.
    pub began: Instant,
}

struct RestartRequest {
    exec: Option<PathBuf>,
    reply: oneshot::Sender<Result<Restarted, Exit>>,
}

/// Asks the keeper for restarts. Cheap to clone.
#[derive(Clone)]
pub struct Restarts {
    restart_tx: mpsc::UnboundedSender<RestartRequest>,
}

impl Restarts {
    /// Stops the app and starts it from `exec` (its stored copy) or its own path. `Err`
    /// with the exit the supervisor is about to exit with: the app exited on its own
    /// first, or could not be started again.
    pub async fn restart(&self, exec: Option<PathBuf>) -> Result<Restarted, Option<Exit>> {
        let (reply, reply_rx) = oneshot::channel();
        self.restart_tx
            .send(RestartRequest { exec, reply })
            .map_err(|_| None)?;
        reply_rx.await.map_err(|_| None)?.map_err(Some)
    }
}

/// The owner of the app's process.
pub struct Keeper {
    spec: ChildSpec,
    reaper: Reaper,
    pid: u32,
    exit_rx: oneshot::Receiver<Exit>,
    restart_rx: mpsc::UnboundedReceiver<RestartRequest>,
    status_tx: watch::Sender<ChildStatus>,
}

impl Keeper {
    /// Starts the app from `exec` (its stored copy) or its own path.
    pub fn start(
        spec: ChildSpec,
        exec: Option<&std::path::Path>,
        reaper: Reaper,
    ) -> Result<(Keeper, Restarts, watch::Receiver<ChildStatus>), SuperviseError> {
        let (pid, exit_rx) =
            reaper
                .spawn(&mut spec.command(exec))
                .map_err(|source| SuperviseError::Spawn {
                    program: spec.program.argv0.clone(),
                    source,
                })?;
        let (status_tx, status_rx) = watch::channel(ChildStatus {
            pid: Some(pid),
            ..ChildStatus::default()
        });
        let (restart_tx, restart_rx) = mpsc::unbounded_channel();
        let keeper = Keeper {
            spec,
            reaper,
            pid,
            exit_rx,
            restart_rx,
            status_tx,
        };
        Ok((keeper, Restarts { restart_tx }, status_rx))
    }

    /// The running app's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Keeps the app until it exits on its own; forwards every signal `signal_rx` carries.
    /// A signal that comes during a restart is forwarded to the new process.
    pub async fn run(mut self, mut signal_rx: mpsc::UnboundedReceiver<i32>) -> Exit {
        loop {
            tokio::select! {
                exit = &mut self.exit_rx => {
                    // The reaper never drops a waiter of a living child; if it did, the
                    // child is lost to us and the container must start over.
                    let exit = exit.unwrap_or(Exit::Code(1));
                    return self.exited(exit);
                }
                Some(sig) = signal_rx.recv() => reaper::send(self.pid, sig),
                Some(request) = self.restart_rx.recv() => {
                    match self.restart(request.exec.as_deref()).await {
                        Ok(restarted) => {
                            let _ = request.reply.send(Ok(restarted));
                        }
                        Err(exit) => {
                            let _ = request.reply.send(Err(exit));
                            return exit;
                        }
                    }
                }
            }
        }
    }

    fn exited(&mut self, exit: Exit) -> Exit {
        eprintln!(
            "tether supervise: the app (pid {}) {exit}; exiting with code {}",
            self.pid,
            exit.code()
        );
        self.status_tx.send_modify(|s| {
            s.pid = None;
            s.exited = Some((self.pid, exit));
        });
        exit
    }

    /// SIGTERM to the app's group, SIGKILL after the grace, then a new process.
    async fn restart(&mut self, exec: Option<&std::path::Path>) -> Result<Restarted, Exit> {
        let began = Instant::now();
        reaper::send_group(self.pid, libc::SIGTERM);
        self.status_tx.send_modify(|s| s.pid = None);
        let exited = match tokio::time::timeout(self.spec.grace, &mut self.exit_rx).await {
            Ok(exit) => exit.ok(),
            Err(_) => {
                reaper::send_group(self.pid, libc::SIGKILL);
                tokio::time::timeout(KILL_WAIT, &mut self.exit_rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        if exited.is_none() {
            eprintln!(
                "tether supervise: the app (pid {}) did not go away after SIGKILL",
                self.pid
            );
            return Err(self.exited(Exit::Code(1)));
        }
        // What it started and left behind would hold its ports.
        reaper::send_group(self.pid, libc::SIGKILL);
        let spawned = self.reaper.spawn(&mut self.spec.command(exec));
        let (pid, exit_rx) = match spawned {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "tether supervise: cannot start the app `{}` again: {e}",
                    self.spec.program.exec_path(exec).display()
                );
                let exit = Exit::Code(if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                });
                return Err(self.exited(exit));
            }
        };
        let old = std::mem::replace(&mut self.pid, pid);
        self.exit_rx = exit_rx;
        self.status_tx.send_modify(|s| {
            s.pid = Some(pid);
            s.restarts += 1;
        });
        eprintln!(
            "tether supervise: restarted the app{} (pid {old} → {pid}) in {:?}",
            match exec {
                Some(_) => " from its synced program",
                None => "",
            },
            began.elapsed()
        );
        Ok(Restarted { pid, began })
    }
}
