//! The DNS server CMD's resolv.conf names: cluster names from the cluster, every other
//! name from the laptop's own resolver.
//!
//! A query for one name is looked up with [`ClusterNet::lookup`]: `Found` is answered here
//! (for A and AAAA the addresses of that family, none of it being an empty NOERROR; for any
//! other type an empty NOERROR too, since the name exists but cluster names carry
//! addresses only: an NXDOMAIN from upstream would say the name does not exist),
//! `NotCluster` is forwarded, `NotFound` is NXDOMAIN and any other error SERVFAIL. Reverse
//! lookups (PTR), several questions and what hickory cannot parse are forwarded as they
//! came, without asking the cluster. Forwarding asks the laptop's nameservers (read before
//! the namespace's resolv.conf was mounted) in order, over the query's transport, and
//! relays their answer unchanged. Messages are parsed and built with hickory-proto, the
//! DNS codec of hickory-resolver that the connect agent uses, rather than a parser of our
//! own.

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::{
        DNSClass, RData, Record, RecordType,
        rdata::{A, AAAA},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

use crate::connect::{ClusterNet, DialError, Lookup};

/// How long one upstream nameserver gets before the next is asked (glibc waits 5 s, but
/// CMD's resolver retries on its own, so a dead server should not eat its whole budget).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The TTL of cluster answers: short, as pod addresses change with every rollout.
const CLUSTER_TTL: u32 = 5;

/// The UDP payload tether advertises in its own EDNS answers (the DNS flag day's size).
const EDNS_PAYLOAD: u16 = 1232;

/// The transport a query came over, which is also the one it is forwarded over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Answers larger than the client's UDP size are truncated (TC) so it retries on TCP.
    Udp,
    Tcp,
}

/// Which addresses a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
    /// A type that is not an address (TXT, MX, HTTPS…): a cluster name has none.
    None,
}

/// What a query needs, decided from the query alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Ask the cluster for `name` (lowercase, without the root's trailing dot).
    Ask {
        name: String,
        family: Family,
    },
    Forward,
}

fn plan(query: &Message) -> Plan {
    let [q] = query.queries() else {
        return Plan::Forward;
    };
    if query.message_type() != MessageType::Query
        || query.op_code() != OpCode::Query
        || q.query_class() != DNSClass::IN
    {
        return Plan::Forward;
    }
    let family = match q.query_type() {
        RecordType::A => Family::V4,
        RecordType::AAAA => Family::V6,
        // Reverse names are never cluster names as `lookup` knows them.
        RecordType::PTR => return Plan::Forward,
        _ => Family::None,
    };
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if name.is_empty() {
        return Plan::Forward;
    }
    Plan::Ask { name, family }
}

/// The header and question of a reply to `query`, with an OPT record if it had one.
fn reply_to(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(query.checking_disabled())
        .set_response_code(code);
    for q in query.queries() {
        reply.add_query(q.clone());
    }
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

/// The reply to an `Ask` from what the cluster said; `None`: not a cluster name, forward it.
fn cluster_reply(
    query: &Message,
    family: Family,
    lookup: Result<Lookup, DialError>,
) -> Option<Message> {
    match lookup {
        Ok(Lookup::NotCluster) => None,
        Ok(Lookup::Missing) => Some(reply_to(query, ResponseCode::NXDomain)),
        Ok(Lookup::Found { addrs, .. }) => {
            let mut reply = reply_to(query, ResponseCode::NoError);
            let name = query.queries().first()?.name().clone();
            for addr in addrs {
                let rdata = match (family, addr) {
                    (Family::V4, std::net::IpAddr::V4(ip)) => RData::A(A(ip)),
                    (Family::V6, std::net::IpAddr::V6(ip)) => RData::AAAA(AAAA(ip)),
                    _ => continue,
                };
                reply.add_answer(Record::from_rdata(name.clone(), CLUSTER_TTL, rdata));
            }
            Some(reply)
        }
        Err(DialError::NotFound(_)) => Some(reply_to(query, ResponseCode::NXDomain)),
        Err(_) => Some(reply_to(query, ResponseCode::ServFail)),
    }
}

/// The wire form of `reply`; over UDP, a reply larger than the client accepts (512 bytes,
/// or its EDNS size) goes out empty with TC set.
fn encode(reply: &Message, query: &Message, transport: Transport) -> Option<Vec<u8>> {
    let bytes = reply.to_vec().ok()?;
    let limit = match query.extensions() {
        Some(edns) => usize::from(edns.max_payload().max(512)),
        None => 512,
    };
    if transport == Transport::Udp && bytes.len() > limit {
        let mut truncated = reply_to(query, reply.response_code());
        truncated.set_truncated(true);
        return truncated.to_vec().ok();
    }
    Some(bytes)
}

/// Answers the namespace's queries.
#[derive(Clone)]
pub(crate) struct Resolver<N> {
    net: N,
    upstreams: Vec<SocketAddr>,
}

impl<N: ClusterNet> Resolver<N> {
    /// Names the cluster does not know go to `upstreams`; with none, they are REFUSED.
    pub(crate) fn new(net: N, upstreams: Vec<SocketAddr>) -> Self {
        Self { net, upstreams }
    }

    /// The answer to one query message, or `None` to send nothing (not a query, or no
    /// upstream answered a message tether cannot parse; CMD's resolver retries).
    pub(crate) async fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let Ok(msg) = Message::from_vec(query) else {
            return self.forward(query, transport).await;
        };
        if msg.message_type() != MessageType::Query {
            return None;
        }
        if let Plan::Ask { name, family } = plan(&msg) {
            let lookup = self.net.lookup(&name).await;
            if let Err(e) = &lookup {
                tracing::debug!(%name, error = %e, "cluster lookup failed");
            }
            if let Some(reply) = cluster_reply(&msg, family, lookup) {
                return encode(&reply, &msg, transport);
            }
        }
        if self.upstreams.is_empty() {
            // A server for cluster names only (connect's): the rest is not ours to answer,
            // and a resolver that lists others beside it asks those.
            return encode(&reply_to(&msg, ResponseCode::Refused), &msg, transport);
        }
        match self.forward(query, transport).await {
            Some(answer) => Some(answer),
            None => encode(&reply_to(&msg, ResponseCode::ServFail), &msg, transport),
        }
    }

    /// Asks the laptop's nameservers in order; the first answer wins.
    async fn forward(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        for &upstream in &self.upstreams {
            let asked = match transport {
                Transport::Udp => {
                    tokio::time::timeout(UPSTREAM_TIMEOUT, ask_udp(upstream, query)).await
                }
                Transport::Tcp => {
                    tokio::time::timeout(UPSTREAM_TIMEOUT, ask_tcp(upstream, query)).await
                }
            };
            match asked {
                Ok(Ok(answer)) => return Some(answer),
                Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "upstream nameserver failed"),
                Err(_) => tracing::debug!(%upstream, "upstream nameserver timed out"),
            }
        }
        None
    }
}

/// One query to `upstream` over UDP from a fresh socket (a random source port per query, so
/// an off-path forger must guess it); the answer is the first datagram with the query's id.
async fn ask_udp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One query to `upstream` over TCP (two-byte length prefixes, RFC 1035 4.2.2).
async fn ask_tcp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    write_framed(&mut stream, query).await?;
    read_framed(&mut stream)
        .await?
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
}

/// Reads one length-prefixed DNS message; `None` at a clean EOF before it.
pub(crate) async fn read_framed<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut msg).await?;
    Ok(Some(msg))
}

/// Writes one length-prefixed DNS message.
pub(crate) async fn write_framed<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    msg: &[u8],
) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    w.write_all(&framed).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use hickory_proto::{
        op::Query,
        rr::{Name, RecordType},
    };

    use super::*;

    fn query(name: &str, qtype: RecordType, edns: bool) -> Message {
        let mut m = Message::new();
        m.set_id(0x4242)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        }
        m
    }

    fn found(addrs: &[&str]) -> Result<Lookup, DialError> {
        Ok(Lookup::Found {
            fqdn: "orders-svc.api.svc.cluster.local".into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        })
    }

    fn addrs_of(reply: &Message) -> Vec<IpAddr> {
        reply
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_and_aaaa_queries_ask_the_cluster_by_their_bare_lowercase_name() {
        let q = query("Orders-Svc.API.", RecordType::A, false);
        assert_eq!(
            plan(&q),
            Plan::Ask {
                name: "orders-svc.api".into(),
                family: Family::V4
            }
        );
        let q = query("pg-0.pg.data", RecordType::AAAA, false);
        assert!(matches!(
            plan(&q),
            Plan::Ask {
                family: Family::V6,
                ..
            }
        ));
        assert_eq!(
            plan(&query("7.0.18.198.in-addr.arpa.", RecordType::PTR, false)),
            Plan::Forward
        );
        for other in [RecordType::SRV, RecordType::TXT, RecordType::HTTPS] {
            assert!(matches!(
                plan(&query("orders-svc.api.", other, false)),
                Plan::Ask {
                    family: Family::None,
                    ..
                }
            ));
        }
    }

    #[test]
    fn found_answers_the_family_asked_for() {
        let addrs = ["198.18.0.7", "2001:db8::7", "198.18.0.8"];
        let q = query("orders-svc.api.", RecordType::A, false);
        let reply = cluster_reply(&q, Family::V4, found(&addrs)).unwrap();
        assert_eq!(reply.id(), 0x4242);
        assert_eq!(reply.message_type(), MessageType::Response);
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert_eq!(
            addrs_of(&reply),
            vec![
                "198.18.0.7".parse::<IpAddr>().unwrap(),
                "198.18.0.8".parse().unwrap()
            ]
        );
        // The answer's owner is the name asked, so stub resolvers accept it.
        assert_eq!(reply.answers()[0].name(), q.queries()[0].name());

        let q = query("orders-svc.api.", RecordType::AAAA, false);
        let reply = cluster_reply(&q, Family::V6, found(&addrs)).unwrap();
        assert_eq!(
            addrs_of(&reply),
            vec!["2001:db8::7".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn no_address_of_the_family_is_an_empty_noerror() {
        let q = query("orders-svc.api.", RecordType::AAAA, false);
        let reply = cluster_reply(&q, Family::V6, found(&["198.18.0.7"])).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(reply.answers().is_empty());
        assert_eq!(reply.queries().len(), 1);
        // Other types of a cluster name: the name exists, with no such records.
        let q = query("orders-svc.api.", RecordType::HTTPS, false);
        let reply = cluster_reply(&q, Family::None, found(&["198.18.0.7"])).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(reply.answers().is_empty());
    }

    #[test]
    fn not_cluster_forwards_and_errors_are_answered() {
        let q = query("example.org.", RecordType::A, false);
        assert!(cluster_reply(&q, Family::V4, Ok(Lookup::NotCluster)).is_none());
        let reply = cluster_reply(
            &q,
            Family::V4,
            Err(DialError::Disconnected("tunnel down".into())),
        )
        .unwrap();
        assert_eq!(reply.response_code(), ResponseCode::ServFail);
        let reply = cluster_reply(&q, Family::V4, Err(DialError::NotFound("nope".into()))).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::NXDomain);
    }

    #[test]
    fn a_large_udp_answer_is_truncated_unless_edns_allows_it() {
        let many: Vec<String> = (0..60).map(|i| format!("198.18.1.{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let q = query("pg.data.", RecordType::A, false);
        let reply = cluster_reply(&q, Family::V4, found(&many)).unwrap();
        let udp = Message::from_vec(&encode(&reply, &q, Transport::Udp).unwrap()).unwrap();
        assert!(udp.truncated());
        assert!(udp.answers().is_empty());
        let tcp = Message::from_vec(&encode(&reply, &q, Transport::Tcp).unwrap()).unwrap();
        assert!(!tcp.truncated());
        assert_eq!(tcp.answers().len(), 60);

        let q = query("pg.data.", RecordType::A, true);
        let reply = cluster_reply(&q, Family::V4, found(&many)).unwrap();
        let udp = Message::from_vec(&encode(&reply, &q, Transport::Udp).unwrap()).unwrap();
        assert!(!udp.truncated());
        assert!(udp.extensions().is_some());
    }

    #[tokio::test]
    async fn framing_round_trips() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_framed(&mut a, b"hello").await.unwrap();
        drop(a);
        assert_eq!(read_framed(&mut b).await.unwrap().unwrap(), b"hello");
        assert!(read_framed(&mut b).await.unwrap().is_none());
    }
}
