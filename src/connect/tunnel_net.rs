//! [`ClusterNet`] over the link to the connect agent: lookups are `dns:` streams, dials
//! `tcp:` streams whose first line says whether the far end accepted. Answers are cached
//! briefly (the agent's DNS caches too), the addresses they handed out are remembered as
//! the cluster's, and every connection counts towards [`Stats`] for `connect --status`.

use std::{
    collections::{HashMap, HashSet},
    io,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader, ReadBuf};

use super::{
    link::Link,
    net::{ClusterNet, Conn, DialError, Lookup},
};
use crate::tunnel::target::{Answer, Failure, Reply, Target};

/// How long a call waits for the link to be up before it fails.
const LINK_WAIT: Duration = Duration::from_secs(5);
/// How long answers are kept.
const FOUND_TTL: Duration = Duration::from_secs(5);
const MISSING_TTL: Duration = Duration::from_secs(2);
/// The longest first line or lookup answer an agent may send.
const LINE_LIMIT: u64 = 64 * 1024;

/// What went through the session, for `tether connect --status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Connections open now.
    pub open: u64,
    /// Connections made since the start.
    pub total: u64,
    /// Bytes sent into the cluster and received from it.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub lookups: u64,
    /// The newest failure a client was given, with its reason.
    pub last_failure: Option<String>,
}

#[derive(Default)]
struct Counters {
    open: AtomicU64,
    total: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    lookups: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

struct Inner {
    link: Link,
    namespace: String,
    /// The namespaces the laptop's user can see: `x.NS` for one of them is a cluster name.
    namespaces: HashSet<String>,
    counters: Counters,
    /// Addresses lookups handed out: traffic to them goes through the agent.
    learned: Mutex<HashSet<IpAddr>>,
    cache: Mutex<HashMap<String, (Instant, Lookup)>>,
}

/// The cluster as the connect session reaches it. Cheap to clone.
#[derive(Clone)]
pub struct TunnelNet {
    inner: Arc<Inner>,
}

impl TunnelNet {
    /// Names are looked up relative to `namespace`, as a pod there would.
    pub fn new(link: Link, namespace: &str, namespaces: HashSet<String>) -> TunnelNet {
        TunnelNet {
            inner: Arc::new(Inner {
                link,
                namespace: namespace.to_owned(),
                namespaces,
                counters: Counters::default(),
                learned: Mutex::default(),
                cache: Mutex::default(),
            }),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    pub fn link(&self) -> &Link {
        &self.inner.link
    }

    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            open: c.open.load(Ordering::Relaxed),
            total: c.total.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            lookups: c.lookups.load(Ordering::Relaxed),
            last_failure: c.last_failure.lock().ok().and_then(|f| f.clone()),
        }
    }

    fn failed(&self, e: DialError) -> DialError {
        if let Ok(mut f) = self.inner.counters.last_failure.lock() {
            *f = Some(e.to_string());
        }
        e
    }

    async fn open(&self, target: &Target) -> Result<tokio::io::DuplexStream, DialError> {
        let opener = self.inner.link.opener(LINK_WAIT).await.ok_or_else(|| {
            DialError::Disconnected(format!(
                "the link to the connect agent has been down for over {} s",
                LINK_WAIT.as_secs()
            ))
        })?;
        opener
            .open(&target.to_wire())
            .map_err(|e| DialError::Disconnected(e.to_string()))
    }

    fn cached(&self, name: &str) -> Option<Lookup> {
        let cache = self.inner.cache.lock().ok()?;
        let (at, found) = cache.get(name)?;
        let ttl = match found {
            Lookup::Found { .. } => FOUND_TTL,
            Lookup::Missing | Lookup::NotCluster => MISSING_TTL,
        };
        (at.elapsed() < ttl).then(|| found.clone())
    }
}

impl ClusterNet for TunnelNet {
    async fn lookup(&self, name: &str) -> Result<Lookup, DialError> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(found) = self.cached(&key) {
            return Ok(found);
        }
        self.inner.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let target = Target::Lookup {
            namespace: self.inner.namespace.clone(),
            name: key.clone(),
        };
        let stream = self.open(&target).await.map_err(|e| self.failed(e))?;
        let mut text = Vec::new();
        let read = stream.take(LINE_LIMIT).read_to_end(&mut text).await;
        let answer: Answer = match read {
            Ok(_) => serde_json::from_slice(&text).map_err(|e| {
                DialError::Disconnected(format!("the agent's answer for {key}: {e}"))
            })?,
            Err(e) => return Err(self.failed(DialError::Disconnected(e.to_string()))),
        };
        if let Some(error) = answer.error {
            return Err(self.failed(DialError::Unreachable(error)));
        }
        let found = if answer.fqdn.is_empty() {
            if cluster_shaped(
                &key,
                &self.inner.namespace,
                &self.inner.namespaces,
                &answer.domain,
            ) {
                Lookup::Missing
            } else {
                Lookup::NotCluster
            }
        } else {
            if let Ok(mut learned) = self.inner.learned.lock() {
                learned.extend(answer.addrs.iter().copied());
            }
            Lookup::Found {
                fqdn: answer.fqdn,
                addrs: answer.addrs,
            }
        };
        if let Ok(mut cache) = self.inner.cache.lock() {
            cache.insert(key, (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    async fn dial(&self, host: &str, port: u16) -> Result<Box<dyn Conn>, DialError> {
        let target = Target::Tcp {
            host: host.to_owned(),
            port,
        };
        let stream = self.open(&target).await.map_err(|e| self.failed(e))?;
        let mut stream = BufReader::new(stream);
        let mut first = Vec::new();
        let read = (&mut stream)
            .take(LINE_LIMIT)
            .read_until(b'\n', &mut first)
            .await;
        let reply: Reply = match read {
            Ok(n) if n > 0 => serde_json::from_slice(&first).map_err(|e| {
                self.failed(DialError::Disconnected(format!(
                    "the agent's reply for {host}:{port}: {e}"
                )))
            })?,
            Ok(_) => {
                return Err(self.failed(DialError::Disconnected(format!(
                    "the agent reset the stream to {host}:{port}"
                ))));
            }
            Err(e) => return Err(self.failed(DialError::Disconnected(e.to_string()))),
        };
        match reply.failure {
            None => {}
            Some(Failure::Refused) => return Err(self.failed(DialError::Refused(reply.detail))),
            Some(Failure::NotFound) => return Err(self.failed(DialError::NotFound(reply.detail))),
            Some(Failure::Unreachable) => {
                return Err(self.failed(DialError::Unreachable(reply.detail)));
            }
        }
        let c = &self.inner.counters;
        c.open.fetch_add(1, Ordering::Relaxed);
        c.total.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Counted {
            inner: stream,
            net: self.inner.clone(),
        }))
    }

    fn is_cluster_addr(&self, ip: IpAddr) -> bool {
        self.inner.learned.lock().is_ok_and(|l| l.contains(&ip))
    }
}

/// Whether `name` can only be a cluster name: one label (a Service of the session's
/// namespace), a name under `svc` or the cluster domain, or under a namespace the laptop
/// knows. Such a name the cluster does not have is answered "no such name" at once.
fn cluster_shaped(name: &str, namespace: &str, namespaces: &HashSet<String>, domain: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or_default();
    let domain = if domain.is_empty() {
        "cluster.local"
    } else {
        domain
    };
    !name.contains('.')
        || last == "svc"
        || name == domain
        || name.ends_with(&format!(".{domain}"))
        || last == namespace
        || namespaces.contains(last)
}

/// A connection that counts its bytes and itself in the session's [`Stats`].
struct Counted<S> {
    inner: S,
    net: Arc<Inner>,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.net.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.net.counters.bytes_in.fetch_add(n, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.net
                .counters
                .bytes_out
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_shaped_names_are_told_from_the_outside_world() {
        let known: HashSet<String> = ["data".to_owned()].into();
        let shaped = |n: &str| cluster_shaped(n, "api", &known, "cluster.local");
        for n in [
            "nope",
            "nope.api",
            "pg-9.pg.data",
            "x.svc",
            "x.y.svc.cluster.local",
        ] {
            assert!(shaped(n), "{n}");
        }
        for n in ["example.com", "crates.io", "localhost.localdomain"] {
            assert!(!shaped(n), "{n}");
        }
    }
}
