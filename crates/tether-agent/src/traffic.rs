//! The agent port: every connection callers make to the Service, accepted here and handed
//! to the [`router`](super::router), which reads the registry of laptops (through
//! [`Routes`](super::routes::Routes)) afresh for every connection and request, so a laptop
//! that leaves loses its traffic at once.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{router, server::Agent};

impl Agent {
    /// Accepts traffic on the agent port until `shutdown`.
    pub async fn serve_traffic(&self, listener: TcpListener, shutdown: CancellationToken) {
        while let Some((conn, peer)) = crate::accept::next(&listener, &shutdown).await {
            let (app, routes) = (self.config.app, self.registry.clone());
            tokio::spawn(router::serve_connection(conn, peer, app, routes));
        }
    }
}
