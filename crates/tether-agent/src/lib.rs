//! `tether-agent`: the traffic agent that runs as a sidecar next to the app container (and,
//! as `tether-agent connect`, the connect agent).
//!
//! Connections arrive on the agent port (the Service's targetPort points here). With no
//! laptop attached each goes to the app over the pod's loopback, unchanged. Laptops attach
//! through the control port, which listens on the pod's 127.0.0.1 only: the API server's
//! port-forward arrives there, other pods cannot. An attach must carry the intercept's
//! token (from the environment, [`TOKEN_ENV`]); several laptops may be attached at once,
//! each with its own route (all traffic, or the HTTP requests carrying its headers), as
//! [`registry`] lays down. When a laptop disconnects or misses heartbeats, its traffic goes
//! back to the app at once, and only its.
//!
//! Layout:
//! - [`args`]: the command line and environment, into an [`AgentConfig`].
//! - [`server`]: [`Agent`], the state every task shares.
//! - [`registry`]: who is attached with which route; refusals; the [`Routes`] it answers.
//! - [`routes`]: the routing seam the per-request router reads.
//! - [`control`]: the control port: checked attaches, the laptops query.
//! - [`traffic`]: the agent port, whose connections go to the [`router`]: per connection
//!   for all traffic, per request (HTTP/1.1, HTTP/2, gRPC) while a header laptop is
//!   attached, anything else passed through as bytes.
//! - [`connect`]: the other role of the same binary, `tether-agent connect`: the connect
//!   agent laptops reach the cluster through.
//! - [`supervise`], [`copy_self`]: live update's roles, `tether-agent supervise` (the app
//!   run under a supervisor that takes files from laptops) and `tether-agent copy-self`
//!   (the init container that puts the binary on the pod's emptyDir).
//! - [`run`](run()): `tether-agent` itself; `error`: its errors.
//!
//! The crate depends on `tether-wire` and nothing of the laptop side (no TUI, no bollard,
//! no kube client): the image it ships in carries only what runs in the pod.

use tether_wire::{accept, live as wire, tunnel};

pub mod args;
pub mod connect;
pub mod control;
pub mod copy_self;
mod error;
pub mod registry;
pub mod router;
pub mod routes;
mod run;
pub mod server;
pub mod supervise;
pub mod traffic;

pub use self::{
    args::{AgentArgs, TOKEN_ENV},
    error::{AgentError, AttachError},
    registry::Registry,
    routes::Routes,
    run::run,
    server::{Agent, AgentConfig},
};

#[cfg(test)]
mod tests;
