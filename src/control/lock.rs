//! One `tether up` per project folder.
//!
//! `<root>/.tether/up.lock` is held with `flock` for the life of the process, so the
//! kernel releases it when the process dies, however it dies: a lock is never stale. The
//! file holds the owner's pid for the message a second `up` prints. Whoever holds the
//! lock owns the control socket; a socket file found by the new owner was left by a dead
//! `up` and is replaced.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, Write},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use rustix::{
    fs::{FlockOperation, flock},
    io::Errno,
};
use tokio::net::UnixListener;

/// Longest path a unix socket address holds on Linux (108 bytes with the final NUL).
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "a `tether up` is already running in {root} ({}control socket {socket}); use `tether status`, `tether logs` or `tether trigger` there, or stop it first",
        pid.map(|p| format!("pid {p}, ")).unwrap_or_default()
    )]
    AlreadyRunning {
        root: PathBuf,
        pid: Option<u32>,
        socket: PathBuf,
    },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot listen on the control socket {path}{}",
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            format!(" (its path is {} bytes, unix sockets allow {MAX_SOCKET_PATH}: move the project to a shorter path)", path.as_os_str().len())
        } else {
            String::new()
        }
    )]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The running `up` of one project folder: holds the lock, and removes the socket when
/// dropped.
#[derive(Debug)]
pub struct Instance {
    root: PathBuf,
    socket: PathBuf,
    /// Holding the open file holds the lock.
    _lock: File,
}

impl Instance {
    /// Takes the folder's lock, or says who holds it.
    pub fn acquire(root: &Path) -> Result<Instance, LockError> {
        let path = root.join(crate::state_dir::NAME).join("up.lock");
        let lock_err = |source| LockError::Lock {
            path: path.clone(),
            source,
        };
        crate::state_dir::ensure(root).map_err(lock_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        let socket = super::socket_path(root);
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::AlreadyRunning {
                    root: root.to_path_buf(),
                    pid: text.trim().parse().ok(),
                    socket,
                });
            }
            Err(e) => return Err(lock_err(e.into())),
        }
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        writeln!(file, "{}", std::process::id()).map_err(lock_err)?;
        Ok(Instance {
            root: root.to_path_buf(),
            socket,
            _lock: file,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Listens on the control socket, replacing one a dead `up` left behind.
    pub fn bind(&self) -> Result<UnixListener, LockError> {
        let bind_err = |source| LockError::Bind {
            path: self.socket.clone(),
            source,
        };
        match fs::remove_file(&self.socket) {
            Ok(()) => tracing::info!("replaced a stale control socket {}", self.socket.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
        let listener = UnixListener::bind(&self.socket).map_err(bind_err)?;
        // The folder is private already; the socket is too, in case it is moved or the
        // folder widened.
        fs::set_permissions(&self.socket, fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        Ok(listener)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_instance_is_told_who_runs() {
        let dir = tempfile::tempdir().unwrap();
        let first = Instance::acquire(dir.path()).unwrap();
        let _listener = first.bind().unwrap();
        let err = Instance::acquire(dir.path()).unwrap_err();
        let LockError::AlreadyRunning { pid, socket, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(*pid, Some(std::process::id()));
        assert_eq!(socket, &dir.path().join(".tether/control.sock"));
        let message = err.to_string();
        assert!(message.contains("already running"), "{message}");
        assert!(message.contains(&format!("pid {}", std::process::id())));
        drop(first);
        assert!(!dir.path().join(".tether/control.sock").exists());
        // Released: the next one gets it.
        Instance::acquire(dir.path()).unwrap();
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let socket = super::super::socket_path(dir.path());
        fs::create_dir_all(socket.parent().unwrap()).unwrap();
        // A socket whose server is gone: bound, then the listener dropped.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        assert!(socket.exists());
        let me = Instance::acquire(dir.path()).unwrap();
        let _listener = me.bind().unwrap();
        tokio::net::UnixStream::connect(&socket).await.unwrap();
    }
}
