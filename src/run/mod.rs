//! `tether run -- CMD`: any program reaches the cluster by its names, rootless, without
//! touching the laptop's network, routes or resolv.conf.
//!
//! CMD runs in a user + network + mount namespace of its own. Inside, `tun0` is its only
//! way out (default routes for IPv4 and IPv6) and `/etc/resolv.conf` names a DNS server
//! at the far end of `tun0`. tether holds that TUN device from the laptop's namespace and
//! runs a userspace TCP/IP stack (smoltcp) on it: every TCP connection CMD opens is
//! accepted there and spliced to the cluster (through [`ClusterNet`](crate::connect::ClusterNet))
//! or, for addresses that are not the cluster's, to a plain connection from the laptop.
//! DNS asks the cluster first and the laptop's resolver for the rest. Other UDP is refused
//! (ICMP port unreachable) and ICMP is dropped: out of scope for now.
//!
//! Layout, in the order a run uses them:
//! - `command`: [`RunCommand`] (what to start) and [`RunOptions`] (the laptop side).
//! - `plan`: the namespace's addresses and resolv.conf, pure.
//! - `namespace`: the setup in the forked child (unshare, id maps, `tun0`, the bind
//!   mount) and its report, with the TUN fd, back to tether.
//! - `child`: CMD's process: the thread that forks and waits, signals, exit codes.
//! - `tun`, `stack`, `packet`, `shared`: the device, the stack's poll loop and the
//!   dispatch of new connections (held SYNs, refusals), the sockets tasks share.
//! - `splice`: one connection copied both ways with the sockets' flow control.
//! - `dns`: the namespace's DNS server.
//! - `session`: [`run`], which ties them together; `error`: what can fail.
//! - `probe`: [`probe`], the namespace setup alone, for `tether doctor`.

mod child;
mod command;
pub(crate) mod dns;
mod error;
mod namespace;
mod packet;
mod plan;
mod probe;
mod session;
mod shared;
mod splice;
mod stack;
mod tun;

pub use self::{
    child::exit_code,
    command::{RunCommand, RunOptions, UserNamespace},
    error::{NamespaceError, RunError, StackError, Step, USERNS_SYSCTLS},
    probe::{Probed, probe},
    session::{run, run_with},
};
