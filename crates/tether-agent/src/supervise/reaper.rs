//! [`Reaper`]: the one place exited children are waited for. As PID 1 the supervisor is
//! also the parent of every orphan in the container, and must reap those too or zombies
//! pile up; but then a wait for "any child" would steal the exit of the app or a run step
//! from whoever waits for it. So every child the supervisor starts is started through
//! here, and each exit goes to its waiter. Not as PID 1 (a test, a shared process
//! namespace), only the registered children are waited for, so the waits of others in the
//! same process keep working.

use std::{
    collections::HashMap,
    fmt, io,
    process::Command,
    sync::{Arc, Mutex},
};

use rustix::process::{Pid, WaitOptions, WaitStatus};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::oneshot,
};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The exit code a shell would report: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }

    fn from_status(status: WaitStatus) -> Exit {
        match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            // Stops and continues are not asked for; a status that is neither is nothing
            // the kernel reports for an exit.
            (None, None) => Exit::Code(status.as_raw()),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with code {c}"),
            Exit::Signal(s) => write!(f, "was killed by signal {s}"),
        }
    }
}

/// Starts children and hands each exit to its waiter. Cheap to clone.
#[derive(Clone)]
pub struct Reaper {
    waiting: Arc<Mutex<HashMap<i32, oneshot::Sender<Exit>>>>,
}

impl Reaper {
    /// Starts reaping on SIGCHLD; with `orphans`, every exited child (the supervisor is PID
    /// 1), else only those started here.
    pub fn start(orphans: bool) -> io::Result<Reaper> {
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Reaper {
            waiting: Arc::default(),
        };
        let r = reaper.clone();
        tokio::spawn(async move {
            // One signal may stand for many exits: each wakeup reaps all there are.
            while sigchld.recv().await.is_some() {
                r.reap(orphans);
            }
        });
        Ok(reaper)
    }

    /// Spawns `command`; returns the child's pid and its exit, which arrives once.
    pub fn spawn(&self, command: &mut Command) -> io::Result<(u32, oneshot::Receiver<Exit>)> {
        let (exit_tx, exit_rx) = oneshot::channel();
        // Held across the spawn, so an exit that comes at once still finds its waiter.
        let mut waiting = self
            .waiting
            .lock()
            .map_err(|_| io::Error::other("the reaper's table is poisoned"))?;
        let child = command.spawn()?;
        let pid = child.id();
        // The std handle is dropped unwaited: the exit is collected here.
        drop(child);
        waiting.insert(pid as i32, exit_tx);
        Ok((pid, exit_rx))
    }

    fn reap(&self, orphans: bool) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        if orphans {
            while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
                if let Some(tx) = waiting.remove(&pid.as_raw_nonzero().get()) {
                    let _ = tx.send(Exit::from_status(status));
                }
            }
            return;
        }
        let pids: Vec<i32> = waiting.keys().copied().collect();
        for raw in pids {
            let Some(pid) = Pid::from_raw(raw) else {
                continue;
            };
            match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => {
                    if let Some(tx) = waiting.remove(&raw) {
                        let _ = tx.send(Exit::from_status(status));
                    }
                }
                Ok(None) => {}
                // Not our child (any more): nobody will report its exit.
                Err(_) => {
                    waiting.remove(&raw);
                }
            }
        }
    }
}

/// Sends `signal` to `pid`; a process already gone is no error.
pub fn send(pid: u32, signal: i32) {
    if let (Some(pid), Some(sig)) = (
        Pid::from_raw(pid as i32),
        rustix::process::Signal::from_named_raw(signal),
    ) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Sends `signal` to the process group `pgid`; a group already gone is no error.
pub fn send_group(pgid: u32, signal: i32) {
    if let (Some(pid), Some(sig)) = (
        Pid::from_raw(pgid as i32),
        rustix::process::Signal::from_named_raw(signal),
    ) {
        let _ = rustix::process::kill_process_group(pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn exits_reach_their_waiters_with_code_or_signal() {
        let reaper = Reaper::start(false).unwrap();
        let (_, three) = reaper
            .spawn(Command::new("/bin/sh").args(["-c", "exit 3"]))
            .unwrap();
        let (_, killed) = reaper
            .spawn(Command::new("/bin/sh").args(["-c", "kill -9 $$"]))
            .unwrap();
        let limit = Duration::from_secs(10);
        let three = tokio::time::timeout(limit, three).await.unwrap().unwrap();
        let killed = tokio::time::timeout(limit, killed).await.unwrap().unwrap();
        assert_eq!(three, Exit::Code(3));
        assert_eq!(killed, Exit::Signal(9));
        assert_eq!(killed.code(), 137);
        assert_eq!(killed.to_string(), "was killed by signal 9");
    }

    #[tokio::test]
    async fn others_children_are_left_alone() {
        let _reaper = Reaper::start(false).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 4"])
            .status()
            .unwrap();
        assert_eq!(out.code(), Some(4), "std's own wait still gets the exit");
    }
}
