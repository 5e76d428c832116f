//! What tether's laptop side and its in-cluster agents say to each other. Both sides
//! depend on this crate and on nothing of each other, so the agent image carries only
//! what runs in the pod.
//!
//! Layout:
//! - [`tunnel`]: many TCP connections multiplexed over one byte stream (the API server's
//!   port-forward to an agent's control port): frames, sessions, flow control, heartbeats.
//! - [`live`]: live update's messages between the laptop and the in-pod supervisor, carried
//!   on tunnel streams.
//! - [`accept`]: the accept loop every listener shares, on either side.

pub mod accept;
pub mod live;
pub mod tunnel;
