//! The loopback DNS server of `tether connect`: A and AAAA queries for cluster names are
//! answered from the cluster ([`ClusterNet::lookup`]); a cluster-shaped name the cluster
//! lacks gets NXDOMAIN at once; anything else gets REFUSED, so a resolver that lists this
//! server beside others (split DNS) asks those, and the laptop's own names are never
//! answered from here.

use std::{net::IpAddr, sync::Arc};

use hickory_resolver::proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{RData, Record, RecordType, rdata},
};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::net::{ClusterNet, Lookup};

/// The TTL of answers: short, since pods come and go.
const TTL: u32 = 5;

/// Serves queries on `socket` until `shutdown`.
pub async fn serve<N: ClusterNet>(socket: UdpSocket, net: N, shutdown: CancellationToken) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = shutdown.cancelled() => return,
        };
        let Ok((n, peer)) = received else { continue };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let (socket, net) = (socket.clone(), net.clone());
        tokio::spawn(async move {
            let answer = answer(&net, &query).await;
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        });
    }
}

/// The answer to one query message.
pub async fn answer<N: ClusterNet>(net: &N, query: &Message) -> Message {
    let mut out = Message::new();
    out.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    let Some(q) = query.queries().first() else {
        out.set_response_code(ResponseCode::FormErr);
        return out;
    };
    out.add_query(q.clone());
    let name = q.name().to_ascii();
    let wanted = q.query_type();
    match net.lookup(&name).await {
        Ok(Lookup::Found { addrs, .. }) => {
            out.set_authoritative(true);
            for ip in addrs {
                let rdata = match (ip, wanted) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(rdata::A(v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(rdata::AAAA(v6)),
                    _ => continue,
                };
                out.add_answer(Record::from_rdata(q.name().clone(), TTL, rdata));
            }
        }
        Ok(Lookup::Missing) => {
            out.set_authoritative(true)
                .set_response_code(ResponseCode::NXDomain);
        }
        Ok(Lookup::NotCluster) => {
            out.set_response_code(ResponseCode::Refused);
        }
        Err(e) => {
            tracing::debug!(%name, "lookup failed: {e}");
            out.set_response_code(ResponseCode::ServFail);
        }
    }
    out
}
