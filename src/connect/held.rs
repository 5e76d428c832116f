//! Which connect session this laptop runs: `connect.json` in the user's runtime folder
//! (`$XDG_RUNTIME_DIR/tether`, else `~/.local/state/tether`, both 0700) names the pid,
//! context, namespace and loopback addresses of the running `tether connect`; its control
//! socket sits beside it. A file whose pid is gone is a session that was killed: it counts
//! as none and is replaced. One session per user and machine, as one resolver and one
//! proxy port are what clients are pointed at.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::error::ConnectError;

/// What the running session says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub pid: u32,
    pub context: String,
    /// The cluster's identity (server and CA), as [`crate::cluster::Cluster::id`].
    pub cluster: String,
    pub namespace: String,
    pub proxy: SocketAddr,
    pub dns: SocketAddr,
}

/// The folder of the laptop-wide state: private to the user.
pub fn dir() -> Result<PathBuf, ConnectError> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let dir = base.join("tether");
    crate::state_dir::private_dir(&dir).map_err(|source| ConnectError::State {
        what: "cannot make the folder",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

pub fn socket(dir: &Path) -> PathBuf {
    dir.join("connect.sock")
}

fn file(dir: &Path) -> PathBuf {
    dir.join("connect.json")
}

/// The running session, if one is: a file left by a dead one is removed.
pub fn read(dir: &Path) -> Option<Held> {
    let path = file(dir);
    let held: Held = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    if alive(held.pid) {
        Some(held)
    } else {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(socket(dir));
        None
    }
}

pub fn write(dir: &Path, held: &Held) -> Result<(), ConnectError> {
    let path = file(dir);
    let bytes = serde_json::to_vec_pretty(held).unwrap_or_default();
    crate::state_dir::write_private(&path, &bytes).map_err(|source| ConnectError::State {
        what: "cannot write",
        path,
        source,
    })
}

/// Removes the session's file and socket, if they are this process's.
pub fn remove(dir: &Path) {
    if read(dir).is_some_and(|h| h.pid == std::process::id()) {
        let _ = std::fs::remove_file(file(dir));
        let _ = std::fs::remove_file(socket(dir));
    }
}

/// Whether a process with this pid exists (signal 0 asks without sending).
fn alive(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => {
            e != rustix::io::Errno::SRCH && io::Error::from(e).kind() != io::ErrorKind::NotFound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_whose_process_is_gone_counts_as_none() {
        let t = tempfile::tempdir().unwrap();
        let mut held = Held {
            pid: std::process::id(),
            context: "tether-dev".into(),
            cluster: "c".into(),
            namespace: "api".into(),
            proxy: "127.0.0.1:1080".parse().unwrap(),
            dns: "127.0.0.1:1053".parse().unwrap(),
        };
        write(t.path(), &held).unwrap();
        assert_eq!(read(t.path()), Some(held.clone()));
        // A pid far above any pid_max: no such process.
        held.pid = 0x3fff_fff0;
        write(t.path(), &held).unwrap();
        assert_eq!(read(t.path()), None);
        assert!(!file(t.path()).exists(), "the dead session's file is gone");
    }
}
