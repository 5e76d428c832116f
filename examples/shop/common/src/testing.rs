//! A router served on `127.0.0.1:0` for tests, stopped when dropped.
//!
//! The services' unit tests and the gateway's end-to-end test start real
//! listeners with [`spawn`] and talk to them over HTTP, exactly as a peer
//! service or `curl` would.

use std::net::SocketAddr;

use axum::Router;
use reqwest::Url;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::serve;

/// A running router. Dropping it shuts the server down.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/`, ready to be a peer URL.
    pub url: Url,
    /// Fires the graceful shutdown.
    stop_tx: Option<oneshot::Sender<()>>,
    /// The serving task, aborted on drop if it is still running.
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, closes idle keep-alive connections and waits for
    /// the requests in flight: afterwards a connection to it is refused,
    /// even from a client that had one pooled.
    pub async fn stop(mut self) {
        if let Some(stop_tx) = self.stop_tx.take() {
            let _ = stop_tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// `url` joined with `path`, as text, e.g. `http://127.0.0.1:4312/healthz`.
    pub fn at(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop_tx) = self.stop_tx.take() {
            let _ = stop_tx.send(());
        }
        self.task.abort();
    }
}

/// Serves `router` on a free loopback port.
pub async fn spawn(router: Router) -> std::io::Result<Running> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        let _ = serve(listener, router, shutdown).await;
    });
    let url = Url::parse(&format!("http://{addr}/"))
        .map_err(|e| std::io::Error::other(format!("bad loopback URL: {e}")))?;
    Ok(Running {
        addr,
        url,
        stop_tx: Some(stop_tx),
        task,
    })
}

/// A loopback URL where nothing listens: bound, then released, so a
/// connection to it is refused (a peer that is down).
pub async fn closed_url() -> std::io::Result<Url> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    Url::parse(&format!("http://{addr}/"))
        .map_err(|e| std::io::Error::other(format!("bad loopback URL: {e}")))
}
