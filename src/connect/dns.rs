//! The loopback DNS server of `tether connect`: the same answers as `tether run`'s DNS
//! server ([`Resolver`]: cluster names from the cluster, a cluster-shaped name the cluster
//! lacks NXDOMAIN at once), but with no upstream: every other name is REFUSED, so a resolver
//! that lists this server beside others (split DNS) asks those, and the laptop's own names
//! are never answered from here.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::net::ClusterNet;
use crate::run::dns::{Resolver, Transport};

/// Serves queries on `socket` until `shutdown`.
pub async fn serve<N: ClusterNet>(socket: UdpSocket, net: N, shutdown: CancellationToken) {
    let socket = Arc::new(socket);
    let resolver = Resolver::new(net, Vec::new());
    let mut buf = vec![0u8; 4096];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = shutdown.cancelled() => return,
        };
        let Ok((n, peer)) = received else { continue };
        let (socket, resolver, query) = (socket.clone(), resolver.clone(), buf[..n].to_vec());
        tokio::spawn(async move {
            if let Some(answer) = resolver.answer(&query, Transport::Udp).await {
                let _ = socket.send_to(&answer, peer).await;
            }
        });
    }
}
