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
