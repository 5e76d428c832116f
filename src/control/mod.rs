//! The local control socket of a running `tether up`, and the client that `tether status`,
//! `tether logs` and `tether trigger` use from another terminal.
//!
//! Layout:
//! - [`lock`]: one `up` per project folder; the lock names the pid and socket of the
//!   running one, and a socket left by a dead one is replaced.
//! - [`protocol`]: the JSON shapes on the wire.
//! - [`server`]: HTTP/1.1 (hyper) on the unix socket, reading the engine's views and
//!   sending triggers; it holds no state of its own.
//! - [`client`]: the other end, for the commands.
//!
//! # Protocol, version 1
//! HTTP/1.1 over `<project root>/.tether/control.sock` (mode of the folder; no TCP port,
//! so only the user who can open the folder can talk to it).
//! - `GET /status` → `200` [`protocol::Status`] as JSON.
//! - `GET /logs?resource=R&follow=1&tail=N` → `200`, newline-delimited JSON
//!   [`protocol::LogRecord`]s: the last `N` stored lines (default 1000) of `R` (or of every
//!   resource), then, with `follow=1`, every new line until `up` stops.
//! - `POST /trigger/R` → `202`: a rebuild and redeploy of `R` is queued.
//!
//! Errors are `{"error": "..."}` with `404` (unknown resource or path), `405` (method),
//! `400` (bad query) or `503` (the session is stopping or busy).
//!
//! Compatibility: within version 1, fields and paths are only ever added; clients ignore
//! fields they do not know. A change that removes or renames anything bumps
//! [`protocol::VERSION`], which `/status` reports.

pub mod client;
pub mod lock;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

pub use self::{
    client::{Client, ClientError},
    lock::{Instance, LockError},
};

/// The socket of the `up` running in the project folder `root`.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join(".tether").join("control.sock")
}
