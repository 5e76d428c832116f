//! The cluster side of `tether run`'s tests and bench, on loopback: a [`ClusterNet`] whose
//! names live in 198.18.0.0/15 (the benchmarking range, never a real target) and whose
//! services are tokio listeners on 127.0.0.1, plus a fake upstream nameserver.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
use sha2::{Digest, Sha256};
use tether::connect::{ClusterNet, Conn, DialError, Lookup};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream, UdpSocket},
};

/// The fake cluster: names, their addresses, and where each address:port really listens.
#[derive(Clone, Default)]
pub struct FakeNet {
    names: Arc<Mutex<HashMap<String, Vec<IpAddr>>>>,
    services: Arc<Mutex<HashMap<(IpAddr, u16), SocketAddr>>>,
    /// Addresses the cluster has no route to.
    unreachable: Arc<Mutex<Vec<IpAddr>>>,
    pub dials: Arc<AtomicU64>,
    /// How many times each name was looked up.
    pub lookups: Arc<Mutex<HashMap<String, u32>>>,
}

impl FakeNet {
    pub fn name(&self, name: &str, addr: &str) -> IpAddr {
        let ip: IpAddr = addr.parse().unwrap();
        self.names.lock().unwrap().insert(name.into(), vec![ip]);
        ip
    }

    /// A name with many addresses, each serving what `at` serves on `port`.
    pub fn name_many(&self, name: &str, addrs: Vec<IpAddr>, port: u16, at: SocketAddr) {
        for ip in &addrs {
            self.serve(*ip, port, at);
        }
        self.names.lock().unwrap().insert(name.into(), addrs);
    }

    pub fn unreachable(&self, ip: IpAddr) {
        self.unreachable.lock().unwrap().push(ip);
    }

    pub fn serve(&self, ip: IpAddr, port: u16, at: SocketAddr) {
        self.services.lock().unwrap().insert((ip, port), at);
    }
}

impl ClusterNet for FakeNet {
    async fn lookup(&self, name: &str) -> Result<Lookup, DialError> {
        *self.lookups.lock().unwrap().entry(name.into()).or_default() += 1;
        match self.names.lock().unwrap().get(name) {
            Some(addrs) => Ok(Lookup::Found {
                fqdn: format!("{name}.svc.cluster.local"),
                addrs: addrs.clone(),
            }),
            None => Ok(Lookup::NotCluster),
        }
    }

    async fn dial(&self, host: &str, port: u16) -> Result<Box<dyn Conn>, DialError> {
        self.dials.fetch_add(1, Ordering::Relaxed);
        let ip: IpAddr = host
            .parse()
            .map_err(|_| DialError::NotFound(host.to_string()))?;
        if self.unreachable.lock().unwrap().contains(&ip) {
            return Err(DialError::Unreachable(format!("{host}:{port}")));
        }
        let at = self.services.lock().unwrap().get(&(ip, port)).copied();
        let Some(at) = at else {
            return Err(DialError::Refused(format!("{host}:{port}")));
        };
        let stream = TcpStream::connect(at)
            .await
            .map_err(|e| DialError::Unreachable(e.to_string()))?;
        stream.set_nodelay(true).unwrap();
        Ok(Box::new(stream))
    }

    fn is_cluster_addr(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                o[0] == 198 && (o[1] & 0xfe) == 18
            }
            // 2001:db8::/32, the documentation range.
            IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0x0db8],
        }
    }
}

/// The bytes `/download?bytes=N` sends: a fixed pseudo-random stream (xorshift), so a
/// dropped, duplicated or reordered chunk changes the digest. Generated chunk by chunk, so
/// a large download costs no memory.
pub struct Pattern(u64);

impl Pattern {
    pub fn new() -> Self {
        Self(0x9e37_79b9_7f4a_7c15)
    }

    /// Fills `buf` (a multiple of 8 bytes long) with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            let x = &mut self.0;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
    }
}

/// The sha256 of the first `len` bytes of [`Pattern`].
pub fn pattern_sha256(len: usize) -> String {
    let mut p = Pattern::new();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        p.fill(&mut buf);
        let n = left.min(buf.len());
        hasher.update(&buf[..n]);
        left -= n;
    }
    hex::encode(hasher.finalize())
}

/// A small HTTP/1.1 service: `GET /healthz`, `GET /download?bytes=N`, `PUT|POST /upload`
/// (answers the body's sha256). Keeps connections alive. `sent` counts body bytes written.
pub struct HttpService {
    pub addr: SocketAddr,
    pub sent: Arc<AtomicU64>,
}

pub async fn http_service(name: &'static str, bind: IpAddr) -> HttpService {
    let listener = TcpListener::bind((bind, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_http(stream, name, Arc::clone(&counter)));
        }
    });
    HttpService { addr, sent }
}

async fn serve_http(stream: TcpStream, name: &'static str, sent: Arc<AtomicU64>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(256 * 1024, r);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        let mut expect = false;
        let mut close = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("expect:") && lower.contains("100-continue") {
                expect = true;
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let target = parts.next().unwrap_or("").to_string();
        if expect && w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            return;
        }
        let result = if method == "PUT" || method == "POST" {
            let mut hasher = Sha256::new();
            let mut left = length;
            let mut buf = vec![0u8; 256 * 1024];
            while left > 0 {
                let n = match r.read(&mut buf[..left.min(256 * 1024)]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                hasher.update(&buf[..n]);
                left -= n;
            }
            respond(&mut w, &format!("{}\n", hex::encode(hasher.finalize()))).await
        } else if let Some(n) = target.strip_prefix("/download?bytes=") {
            let n: usize = n.parse().unwrap_or(0);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            let mut ok = w.write_all(head.as_bytes()).await.is_ok();
            let mut pattern = Pattern::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = n;
            while ok && left > 0 {
                pattern.fill(&mut buf);
                let chunk = &buf[..left.min(buf.len())];
                ok = w.write_all(chunk).await.is_ok();
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                left -= chunk.len();
            }
            if ok {
                Ok(())
            } else {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        } else if target == "/healthz" {
            respond(&mut w, &format!("{name} ok\n")).await
        } else {
            respond(&mut w, "not found\n").await
        };
        if result.is_err() || close {
            return;
        }
    }
}

async fn respond(w: &mut tokio::net::tcp::OwnedWriteHalf, body: &str) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    );
    w.write_all(msg.as_bytes()).await
}

/// A nameserver on 127.0.0.1 that answers `names` (A records) and NXDOMAIN for the rest,
/// standing in for the laptop's resolver.
pub async fn upstream_dns(names: HashMap<String, Ipv4Addr>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new();
            reply
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(query.op_code())
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true);
            let mut code = ResponseCode::NXDomain;
            if let Some(q) = query.queries().first() {
                reply.add_query(q.clone());
                let name = q.name().to_ascii().trim_end_matches('.').to_string();
                if let Some(ip) = names.get(&name) {
                    code = ResponseCode::NoError;
                    if q.query_type() == RecordType::A {
                        reply.add_answer(Record::from_rdata(
                            q.name().clone(),
                            30,
                            RData::A(A(*ip)),
                        ));
                    }
                }
            }
            reply.set_response_code(code);
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    addr
}
