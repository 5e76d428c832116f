//! `tether connect`: cluster names and addresses from the laptop, without root.
//!
//! One session per user and laptop: a link to the connect agent in the cluster (installed
//! on first use, reached only through the API server's port-forward, attach checked with
//! its token), and on loopback a SOCKS5/HTTP proxy and a DNS server for cluster names.
//! `tether run` reaches the cluster through the same seam, [`ClusterNet`].
//!
//! Layout:
//! - [`net`]: the seam [`ClusterNet`] between the laptop's ways in and the cluster, and
//!   [`reach`](net::reach), the one rule of what goes through the cluster.
//! - [`install`]: the agent's objects in namespace `tether`, applied and removed.
//! - [`link`]: the port-forward and tunnel session to the agent, kept up by itself.
//! - [`session`]: opening a session: checks first, then the agent, then the link.
//! - [`tunnel_net`]: [`ClusterNet`] over the link, with the session's counters.
//! - [`proxy`], [`dns`]: the loopback ways in.
//! - [`held`], [`control`]: which session runs, and its socket for `--status`/`--quit`.
//! - `error`: [`ConnectError`].

pub mod control;
pub mod dns;
mod error;
pub mod held;
pub mod install;
pub mod link;
pub mod net;
pub mod proxy;
pub mod session;
pub mod tunnel_net;

pub use self::{
    error::ConnectError,
    net::{ClusterNet, Conn, DialError, Lookup},
    tunnel_net::TunnelNet,
};
