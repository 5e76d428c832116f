//! The seam between the laptop's ways in (the loopback proxies of `tether connect`, the
//! namespace of `tether run`) and the cluster: look a name up with the cluster's DNS, dial
//! a host and port from inside the cluster. The connect session implements it over the
//! tunnel to the connect agent; tests implement it on loopback.

use std::{future::Future, net::IpAddr};

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection to something inside the cluster, as the caller reads and writes it.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

/// What the cluster's DNS says of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A cluster name: its fully qualified form and addresses.
    Found { fqdn: String, addrs: Vec<IpAddr> },
    /// A name of the cluster's shape (one label, a namespace's, the cluster domain's) that
    /// the cluster does not have: answered "no such name" at once, asked of nobody else.
    Missing,
    /// Not a name the cluster knows: the laptop's own resolver decides (in `run`), or
    /// nobody answers it (connect's DNS server answers cluster names only).
    NotCluster,
}

/// Why a dial or lookup failed, in terms a SOCKS reply or a TCP reset can carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// The destination answered with a refusal (nothing listens, no ready endpoints).
    #[error("connection refused: {0}")]
    Refused(String),
    /// No such name in the cluster.
    #[error("no such name in the cluster: {0}")]
    NotFound(String),
    /// The destination did not answer, or the cluster has no route to it.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The session to the connect agent is down (it reconnects by itself).
    #[error("not connected to the cluster: {0}")]
    Disconnected(String),
}

/// The cluster, as seen from the laptop.
pub trait ClusterNet: Clone + Send + Sync + 'static {
    /// Looks `name` up as a cluster name: relative names (`svc`, `svc.ns`, `pod.svc.ns`)
    /// with the session's namespace first in the search list, like a pod's resolver,
    /// but never the bare name upstream.
    fn lookup(&self, name: &str) -> impl Future<Output = Result<Lookup, DialError>> + Send;

    /// Opens a TCP connection from inside the cluster to `host` (a cluster name or an
    /// address) and `port`; resolves once the far end accepted.
    fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = Result<Box<dyn Conn>, DialError>> + Send;

    /// Whether `ip` is a cluster address: one a [`lookup`](ClusterNet::lookup) handed out,
    /// or in the cluster's Service or pod ranges as far as the session knows them.
    /// Traffic to any other address goes out from the laptop as usual.
    fn is_cluster_addr(&self, ip: IpAddr) -> bool;
}

/// Opens a connection to `host:port` the way every way in does: a cluster name or a
/// cluster address through the cluster, anything else from the laptop as usual.
pub async fn reach<N: ClusterNet>(
    net: &N,
    host: &str,
    port: u16,
) -> Result<Box<dyn Conn>, DialError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        if net.is_cluster_addr(ip) {
            return net.dial(host, port).await;
        }
        return direct(&std::net::SocketAddr::new(ip, port).to_string()).await;
    }
    match net.lookup(host).await? {
        Lookup::Found { fqdn, .. } => net.dial(fqdn.trim_end_matches('.'), port).await,
        Lookup::Missing => Err(DialError::NotFound(host.to_owned())),
        Lookup::NotCluster => direct(&format!("{host}:{port}")).await,
    }
}

/// How long a connection from the laptop itself may take to be accepted.
const DIRECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn direct(addr: &str) -> Result<Box<dyn Conn>, DialError> {
    match tokio::time::timeout(DIRECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(conn)) => {
            let _ = conn.set_nodelay(true);
            Ok(Box::new(conn))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(DialError::Refused(format!("{addr}: {e}")))
        }
        Ok(Err(e)) => Err(DialError::Unreachable(format!("{addr}: {e}"))),
        Err(_) => Err(DialError::Unreachable(format!(
            "{addr}: no answer within {} s",
            DIRECT_TIMEOUT.as_secs()
        ))),
    }
}
