//! CMD as a process: started from a thread of its own, waited for, told of the signals
//! tether receives, and its end turned into tether's exit code.
//!
//! The fork happens on a dedicated thread that then blocks in `waitpid` until CMD exits:
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked ends, so a tokio worker (which
//! may retire while CMD still runs) must not be it, while this thread lives exactly as long
//! as CMD and dies only with tether.

use std::{
    io,
    os::unix::process::ExitStatusExt,
    process::{Command, ExitStatus},
};

use rustix::process::{Pid, Signal};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::oneshot,
};

use super::error::RunError;

/// A started CMD.
pub(crate) struct Child {
    pid: Pid,
    exit_rx: oneshot::Receiver<io::Result<ExitStatus>>,
}

/// Starts `cmd` from a thread that waits for it. Resolves once `exec` succeeded or the
/// spawn failed.
pub(crate) async fn spawn(mut cmd: Command) -> io::Result<Child> {
    let (spawned_tx, spawned_rx) = oneshot::channel();
    let (exit_tx, exit_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("tether-run-child".into())
        .spawn(move || {
            let spawned = cmd.spawn();
            // The pre_exec hook (and the fds it holds) is not needed past the spawn.
            drop(cmd);
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    let _ = spawned_tx.send(Err(e));
                    return;
                }
            };
            let _ = spawned_tx.send(Ok(child.id()));
            let _ = exit_tx.send(child.wait());
        })?;
    let pid = spawned_rx
        .await
        .map_err(|_| io::Error::other("the thread starting the command ended early"))??;
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::other("the command got no valid pid"))?;
    Ok(Child { pid, exit_rx })
}

impl Child {
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `signal` to CMD.
    pub(crate) fn signal(&self, signal: Signal) {
        send_signal(self.pid, signal);
    }

    /// Waits for CMD to exit, passing nothing on: for a child that exits by itself
    /// (`tether doctor`'s probe), where [`Child::wait`]'s signal handlers would outlive it.
    pub(crate) async fn exited(self) -> io::Result<ExitStatus> {
        self.exit_rx
            .await
            .map_err(|_| io::Error::other("the thread waiting for the command ended"))?
    }

    /// Waits for CMD to exit, passing on SIGINT, SIGTERM, SIGHUP and SIGQUIT.
    ///
    /// CMD is in tether's process group, so a Ctrl-C (or Ctrl-\) typed at the terminal
    /// reaches it directly; those are passed on only when tether is not the terminal's
    /// foreground group (then the signal came from `kill`, not from the keyboard, and CMD
    /// would otherwise not hear it). SIGTERM and SIGHUP always are.
    pub(crate) async fn wait(self, program: &str) -> Result<ExitStatus, RunError> {
        let listen = |kind| signal(kind).map_err(RunError::Signals);
        let mut interrupt = listen(SignalKind::interrupt())?;
        let mut terminate = listen(SignalKind::terminate())?;
        let mut hangup = listen(SignalKind::hangup())?;
        let mut quit = listen(SignalKind::quit())?;
        let mut exit_rx = self.exit_rx;
        loop {
            tokio::select! {
                status = &mut exit_rx => {
                    let status = status
                        .map_err(|_| io::Error::other("the thread waiting for the command ended"))
                        .and_then(|s| s);
                    return status.map_err(|source| RunError::Wait {
                        program: program.to_string(),
                        source,
                    });
                }
                _ = interrupt.recv() => {
                    if !terminal_signals_our_group() {
                        send_signal(self.pid, Signal::INT);
                    }
                }
                _ = quit.recv() => {
                    if !terminal_signals_our_group() {
                        send_signal(self.pid, Signal::QUIT);
                    }
                }
                _ = terminate.recv() => {
                    send_signal(self.pid, Signal::TERM);
                }
                _ = hangup.recv() => {
                    send_signal(self.pid, Signal::HUP);
                }
            }
        }
    }
}

/// Sends `signal` to `pid` (CMD may have exited already: then nothing happens; its pid
/// is not reused before the waiting thread reaped it).
pub(crate) fn send_signal(pid: Pid, signal: Signal) {
    let _ = rustix::process::kill_process(pid, signal);
}

/// Whether a terminal tether is attached to has tether's process group in the foreground,
/// so that the keys that signal (Ctrl-C, Ctrl-\) signal CMD too.
fn terminal_signals_our_group() -> bool {
    // SAFETY: plain queries of the process and of fds 0..=2, which are always valid ints.
    unsafe {
        let ours = libc::getpgrp();
        (0..=2).any(|fd| libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == ours)
    }
}

/// The exit code a shell would report for `status`: the code, or 128 + the signal that
/// killed CMD.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        // Killed by SIGKILL (9) / SIGINT (2).
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(2)), 130);
    }

    #[tokio::test]
    async fn the_child_is_waited_for_and_signalled() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let child = spawn(cmd).await.unwrap();
        child.signal(Signal::TERM);
        let status = child.wait("sleep").await.unwrap();
        assert_eq!(exit_code(status), 128 + 15);
    }
}
