//! The running session's control socket (`connect.sock`, in the private folder of
//! [`held`](super::held)): one line in, one JSON line out. `status` answers the session's
//! [`Status`]; `quit` answers `{"quit":true}` and ends the session as Ctrl-C would.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use tokio_util::sync::CancellationToken;

use super::{error::ConnectError, held::Held, tunnel_net::Stats};

/// What `tether connect --status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    #[serde(flatten)]
    pub held: Held,
    /// The agent pod the session runs to; `None` while it reconnects.
    pub agent: Option<String>,
    pub open_connections: u64,
    pub connections: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub lookups: u64,
    /// The newest failure a client was given, with its reason.
    pub last_failure: Option<String>,
}

impl Status {
    pub fn new(held: Held, agent: Option<String>, stats: Stats) -> Status {
        Status {
            held,
            agent,
            open_connections: stats.open,
            connections: stats.total,
            bytes_out: stats.bytes_out,
            bytes_in: stats.bytes_in,
            lookups: stats.lookups,
            last_failure: stats.last_failure,
        }
    }
}

/// Answers on `listener` until `quit` is cancelled (by a `quit` line or by the session).
pub async fn serve(listener: UnixListener, status: impl Fn() -> Status, quit: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = quit.cancelled() => return,
        };
        let Ok((conn, _)) = accepted else { continue };
        let (rd, mut wr) = conn.into_split();
        let mut line = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            BufReader::new(rd).read_line(&mut line),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) {
            continue;
        }
        let answer = match line.trim() {
            "status" => serde_json::to_vec(&status()).unwrap_or_default(),
            "quit" => br#"{"quit":true}"#.to_vec(),
            other => format!(r#"{{"error":"unknown request {other:?}"}}"#).into_bytes(),
        };
        let _ = wr.write_all(&answer).await;
        let _ = wr.write_all(b"\n").await;
        let _ = wr.shutdown().await;
        if line.trim() == "quit" {
            quit.cancel();
            return;
        }
    }
}

/// Asks the session at `socket` one `request`; returns its JSON line.
pub async fn ask(socket: &Path, request: &str) -> Result<String, ConnectError> {
    let mut conn = UnixStream::connect(socket)
        .await
        .map_err(ConnectError::Control)?;
    conn.write_all(format!("{request}\n").as_bytes())
        .await
        .map_err(ConnectError::Control)?;
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .await
        .map_err(ConnectError::Control)?;
    Ok(line)
}

/// The status of this user's running session, if one runs and answers.
pub async fn running() -> Option<Status> {
    let dir = super::held::dir().ok()?;
    super::held::read(&dir)?;
    let line = ask(&super::held::socket(&dir), "status").await.ok()?;
    serde_json::from_str(line.trim()).ok()
}
