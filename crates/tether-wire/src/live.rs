//! The live-update wire: where tether's pieces live inside a pod, and what a laptop and
//! the supervisor (`tether-agent supervise`) say to each other over a tunnel session
//! ([`crate::tunnel`]) on the supervisor's control port.
//!
//! The laptop attaches with the tunnel's handshake, its Hello carrying the token of
//! [`TOKEN_ENV`]. Then every request is one stream the laptop opens:
//!
//! | Open target                    | the laptop sends                   | the answer        |
//! |--------------------------------|------------------------------------|-------------------|
//! | [`STATE_TARGET`] (`live:state`) | nothing                            | a [`State`] line  |
//! | [`APPLY_TARGET`] (`live:apply`) | an [`ApplyHeader`] line, then bytes | an [`Applied`] line |
//!
//! Every answer is a [`Reply`] line: the value, or the [`Failure`] that stopped the request.
//!
//! A line is one JSON value and `\n` (at most [`MAX_LINE`] bytes). After the header line
//! come the contents of `files`, in the header's order, each exactly its `len` bytes with
//! nothing between them. The supervisor reads exactly that many bytes: the laptop need not
//! end its side of the stream. An update whose bytes end early writes nothing. The
//! supervisor may answer before it has read the whole request (a target it cannot write):
//! the laptop then stops sending. The laptop ends the stream once it has read the reply;
//! a supervisor about to exit waits for that (briefly), so a last reply is not lost.
//!
//! # Compatibility rules
//! - Unknown fields are ignored and missing ones take their defaults: optional fields can
//!   be added on either side without a new target.
//! - A new request is a new target. A supervisor that does not know a target resets the
//!   stream, which the laptop reports as a supervisor older than itself.
//! - A changed meaning or layout of a request is a new target name (`live:apply.2`); a
//!   [`Failure`] kind a laptop does not know is reported with its JSON.
//! - The tunnel's own version rules apply underneath.
//!
//! This module depends on nothing of the laptop side, so the supervisor speaks it too.

use std::{
    collections::BTreeMap,
    path::{Component, Path},
    time::Duration,
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The supervisor's control port, on the pod's 127.0.0.1.
pub const CONTROL_PORT: u16 = 9902;
/// The environment variable (filled from a Secret) that holds the token laptops present.
pub const TOKEN_ENV: &str = "TETHER_LIVE_TOKEN";
/// The emptyDir that holds the agent binary and the state: it outlives container restarts.
pub const MOUNT: &str = "/.tether";
/// Where the agent binary sits in its image (the image's entrypoint): live update's init
/// container runs it to copy itself onto the pod's volume.
pub const AGENT_IN_IMAGE: &str = "/tether-agent";
/// Where the init container copies the agent binary.
pub const BINARY: &str = "/.tether/bin/tether-agent";
/// The supervisor's state: the manifest of synced files and their stored copies.
pub const STATE_DIR: &str = "/.tether/state";

/// The target of a stream that asks for the supervisor's [`State`].
pub const STATE_TARGET: &str = "live:state";
/// The target of a stream that carries an update ([`ApplyHeader`] and bytes).
pub const APPLY_TARGET: &str = "live:apply";
/// The longest line either side reads: a header naming many files, a reply carrying
/// several steps' output.
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// The most of a run step's output a reply carries (its end: where errors usually are).
pub const MAX_OUTPUT: usize = 64 * 1024;
/// How long a run step may take before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the supervisor waits for `wait_ports` to answer after a restart.
pub const PORTS_TIMEOUT: Duration = Duration::from_secs(30);

/// One update of a container, as the laptop's engine builds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// The laptop's count of updates; the supervisor keeps the newest it applied, so a
    /// laptop that attaches later knows what the container has.
    pub generation: u64,
    pub files: Vec<FileUpdate>,
    /// Absolute container paths to remove (a missing one is no error).
    pub deletes: Vec<String>,
    /// Commands to run after the files are written, in order (no shell: argv as is).
    pub run: Vec<RunStep>,
    /// Stop the app and start it again once the files are written and the steps ran.
    pub restart: bool,
    /// Ports on 127.0.0.1 that must accept a connection before the update counts as done.
    pub wait_ports: Vec<u16>,
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUpdate {
    /// Absolute container path, in normal form (see [`check_path`]).
    pub path: String,
    /// Permission bits (`0o644`); 0 means `0o644`.
    pub mode: u32,
    pub content: Bytes,
}

/// A command run in the container after an update's files are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunStep {
    /// Executed directly, as `execvp` would (argv\[0\] found through PATH).
    #[serde(default)]
    pub argv: Vec<String>,
}

/// The first line of a `live:apply` stream: the update with each file's length in place
/// of its bytes, which follow the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApplyHeader {
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub files: Vec<FileHeader>,
    #[serde(default)]
    pub deletes: Vec<String>,
    #[serde(default)]
    pub run: Vec<RunStep>,
    #[serde(default)]
    pub restart: bool,
    #[serde(default)]
    pub wait_ports: Vec<u16>,
}

/// A file of an [`ApplyHeader`]: its bytes follow the header, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileHeader {
    pub path: String,
    #[serde(default)]
    pub mode: u32,
    pub len: u64,
}

impl Update {
    /// The header line's value: this update without the files' bytes.
    pub fn header(&self) -> ApplyHeader {
        ApplyHeader {
            generation: self.generation,
            files: self
                .files
                .iter()
                .map(|f| FileHeader {
                    path: f.path.clone(),
                    mode: f.mode,
                    len: f.content.len() as u64,
                })
                .collect(),
            deletes: self.deletes.clone(),
            run: self.run.clone(),
            restart: self.restart,
            wait_ports: self.wait_ports.clone(),
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Applied {
    #[serde(default)]
    pub generation: u64,
    /// Every run step, in order, with its output.
    #[serde(default)]
    pub runs: Vec<RunOutput>,
    /// From the stop signal to the ports answering (to the new start when no ports were
    /// named); `None` when the app was not restarted.
    #[serde(default)]
    pub restarted: Option<Duration>,
    /// The whole update, from its header to the reply.
    #[serde(default)]
    pub took: Duration,
}

/// One run step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunOutput {
    #[serde(default)]
    pub argv: Vec<String>,
    /// The exit code; `None` when it could not start, was killed by a signal or timed out.
    #[serde(default)]
    pub code: Option<i32>,
    /// Standard output and error as they interleaved, the last [`MAX_OUTPUT`] bytes.
    #[serde(default)]
    pub output: String,
}

/// What the container has now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct State {
    /// The newest update applied (0: none since the pod started).
    #[serde(default)]
    pub generation: u64,
    /// Every synced path and the SHA-256 (hex) of its content, as [`sha256_hex`] gives it.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// The app's process, while it runs.
    #[serde(default)]
    pub child_pid: Option<u32>,
    /// Restarts an update asked for since the container started.
    #[serde(default)]
    pub restarts: u32,
    /// The supervisor's tether version.
    #[serde(default)]
    pub version: String,
}

/// Why a request failed, as the supervisor tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// A target the container's user cannot write (and which is not the program).
    NotWritable { path: String, reason: String },
    /// A run step failed; the update's files stay written.
    RunFailed {
        argv: Vec<String>,
        code: Option<i32>,
        output: String,
    },
    /// The restarted app exited (with this code, 128 + N for signal N) before its ports
    /// answered; the supervisor exits with it.
    ChildExited { code: i32 },
    /// These ports did not answer within `after`.
    NotReady { ports: Vec<u16>, after: Duration },
    /// The request is not valid (a relative path, a `..`, a header that does not parse).
    BadRequest { reason: String },
    /// The supervisor failed at its own work (its state directory, starting the app).
    Failed { reason: String },
}

impl std::fmt::Display for Failure {
    /// One line for the supervisor's log (a step's output is the laptop's to show).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotWritable { path, reason } => write!(f, "cannot write {path}: {reason}"),
            Failure::RunFailed { argv, code, .. } => match code {
                Some(c) => write!(f, "the run step `{}` exited with code {c}", argv.join(" ")),
                None => write!(f, "the run step `{}` did not finish", argv.join(" ")),
            },
            Failure::ChildExited { code } => {
                write!(
                    f,
                    "the app exited with code {code} before its ports answered"
                )
            }
            Failure::NotReady { ports, after } => {
                write!(f, "ports {ports:?} did not answer within {after:?}")
            }
            Failure::BadRequest { reason } => write!(f, "a bad update: {reason}"),
            Failure::Failed { reason } => f.write_str(reason),
        }
    }
}

/// A reply line: `{"ok": …}` or `{"failed": {"kind": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    Ok(T),
    Failed(Failure),
}

/// Encodes one line: JSON and a newline.
pub fn line<T: Serialize>(value: &T) -> Vec<u8> {
    crate::tunnel::target::line(value)
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("the stream ended before the line did")]
    Eof,
    #[error("a line longer than {0} bytes")]
    TooLong(usize),
    #[error("the stream failed")]
    Io(#[from] std::io::Error),
}

/// Reads one line of at most `max` bytes (the newline not included).
pub async fn read_line<R>(rd: &mut R, max: usize) -> Result<Vec<u8>, LineError>
where
    R: AsyncBufRead + Unpin,
{
    let mut buf = Vec::new();
    // One more than the line may hold, so a line of exactly `max` bytes and its newline fit.
    (&mut *rd)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        Ok(buf)
    } else if buf.len() > max {
        Err(LineError::TooLong(max))
    } else {
        Err(LineError::Eof)
    }
}

/// The SHA-256 of `content` in lowercase hex, as [`State::files`] carries it.
pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// Checks that `path` may be a sync target: absolute, in normal form (no `.`, `..`, `//`
/// or trailing `/`), not `/` itself and not under [`MOUNT`] (tether's own files). Normal
/// form keeps one name per file, so the manifest never holds a file twice.
pub fn check_path(path: &str) -> Result<&Path, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("`{path}` is not an absolute path"));
    }
    if path.contains('\0') {
        return Err(format!("`{}` holds a NUL byte", path.escape_debug()));
    }
    let mut normal = String::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(name) => {
                normal.push('/');
                normal.push_str(&name.to_string_lossy());
            }
            Component::ParentDir => return Err(format!("`{path}` holds `..`")),
            Component::CurDir | Component::Prefix(_) => {
                return Err(format!("`{path}` is not in normal form"));
            }
        }
    }
    if normal.is_empty() {
        return Err("`/` itself cannot be a sync target".into());
    }
    if normal != path {
        return Err(format!("`{path}` is not in normal form (`{normal}`)"));
    }
    if p.starts_with(MOUNT) {
        return Err(format!(
            "`{path}` is under {MOUNT}, which holds tether's own files"
        ));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_and_its_bytes_parse_back_as_sent() {
        let update = Update {
            generation: 7,
            files: vec![
                FileUpdate {
                    path: "/app/main.js".into(),
                    mode: 0o644,
                    content: Bytes::from_static(b"console.log(1)\n"),
                },
                FileUpdate {
                    path: "/users".into(),
                    mode: 0o755,
                    content: Bytes::from_static(b"\x7fELF\n\n"),
                },
            ],
            deletes: vec!["/app/old.js".into()],
            run: vec![RunStep {
                argv: vec!["/bin/true".into()],
            }],
            restart: true,
            wait_ports: vec![8080],
        };
        let header = update.header();
        assert_eq!(header.files[0].len, 15);
        assert_eq!(header.files[1].len, 6);
        let mut wire = line(&header);
        for f in &update.files {
            wire.extend_from_slice(&f.content);
        }
        let back: ApplyHeader =
            serde_json::from_slice(&wire[..wire.iter().position(|b| *b == b'\n').unwrap()])
                .unwrap();
        assert_eq!(back, header);
        let body = &wire[wire.iter().position(|b| *b == b'\n').unwrap() + 1..];
        assert_eq!(&body[..15], b"console.log(1)\n");
        assert_eq!(&body[15..], b"\x7fELF\n\n", "raw bytes, newlines included");
    }

    #[test]
    fn replies_round_trip_and_ignore_unknown_fields() {
        let ok = Reply::Ok(Applied {
            generation: 3,
            runs: vec![RunOutput {
                argv: vec!["make".into()],
                code: Some(0),
                output: "built\n".into(),
            }],
            restarted: Some(Duration::from_millis(1234)),
            took: Duration::from_micros(1_500_001),
        });
        let back: Reply<Applied> = serde_json::from_slice(&line(&ok)).unwrap();
        assert_eq!(back, ok);
        for failure in [
            Failure::NotWritable {
                path: "/etc/x".into(),
                reason: "Read-only file system (os error 30)".into(),
            },
            Failure::RunFailed {
                argv: vec!["false".into()],
                code: Some(1),
                output: String::new(),
            },
            Failure::ChildExited { code: 139 },
            Failure::NotReady {
                ports: vec![8080],
                after: Duration::from_secs(30),
            },
        ] {
            let r: Reply<State> = Reply::Failed(failure);
            let text = String::from_utf8(line(&r)).unwrap();
            assert!(text.starts_with(r#"{"failed":{"kind":"#), "{text}");
            assert_eq!(serde_json::from_str::<Reply<State>>(&text).unwrap(), r);
        }
        let state: Reply<State> =
            serde_json::from_str(r#"{"ok":{"generation":2,"later":true}}"#).unwrap();
        assert_eq!(
            state,
            Reply::Ok(State {
                generation: 2,
                ..State::default()
            })
        );
    }

    #[tokio::test]
    async fn lines_are_bounded_and_must_end() {
        let mut rd: &[u8] = b"{\"a\":1}\nrest";
        assert_eq!(read_line(&mut rd, 64).await.unwrap(), b"{\"a\":1}");
        assert_eq!(rd, b"rest", "the bytes after the line stay unread");
        let mut exact: &[u8] = b"1234\n";
        assert_eq!(read_line(&mut exact, 4).await.unwrap(), b"1234");
        let mut long: &[u8] = b"12345\n";
        assert!(matches!(
            read_line(&mut long, 4).await,
            Err(LineError::TooLong(4))
        ));
        let mut cut: &[u8] = b"{\"a\":";
        assert!(matches!(read_line(&mut cut, 64).await, Err(LineError::Eof)));
    }

    #[test]
    fn only_absolute_normal_paths_outside_the_mount_are_targets() {
        for good in ["/app/main.js", "/users", "/srv/static/a b.css"] {
            assert_eq!(check_path(good).map(|p| p.to_owned()), Ok(good.into()));
        }
        for bad in [
            "app/main.js",
            "",
            "/",
            "/app/../etc/passwd",
            "/app/./x",
            "/app//x",
            "/app/x/",
            "/.tether/bin/tether-agent",
            "/.tether",
            "/app/\0x",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path("/.tetherish").is_ok(), "a sibling of the mount");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
