//! The agent ports: every connection callers make to the Service, accepted here and handed
//! to the [`router`](super::router), which reads the registry of laptops (through
//! [`Routes`](super::routes::Routes)) afresh for every connection and request, so a laptop
//! that leaves loses its traffic at once.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    router::{self, Upstream},
    server::Agent,
};
use crate::tunnel::traffic_target;

impl Agent {
    /// Accepts traffic on one agent port until `shutdown`: what no laptop takes goes to
    /// `app`, and a laptop's streams name the port (see [`traffic_target`]).
    pub async fn serve_traffic(
        &self,
        listener: TcpListener,
        app: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let port = listener.local_addr().map_or(0, |a| a.port());
        let upstream = Upstream::new(app, traffic_target(port));
        while let Some((conn, peer)) = crate::accept::next(&listener, &shutdown).await {
            let routes = self.registry.clone();
            tokio::spawn(router::serve_connection(
                conn,
                peer,
                upstream.clone(),
                routes,
            ));
        }
    }
}
