//! `tether connect`: cluster names and addresses from the laptop, without root.
//!
//! Layout:
//! - [`net`]: the seam [`ClusterNet`] between the laptop's ways in and the cluster.

pub mod net;

pub use self::net::{ClusterNet, Conn, DialError, Lookup};
