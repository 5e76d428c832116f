//! tether: the developer inner loop on Kubernetes.
//!
//! Layout, following the data of `tether up` (watch → plan → build → push → apply → observe):
//! - [`config`]: `tether.toml`, validated into a [`config::Project`].
//! - [`watch`]: file events to change sets; lost events (an overflow, an error) become a
//!   rescan, new folders are watched with the files already in them.
//! - [`build`]: input digests, host builds, image builds and pushes (bollard).
//! - [`registry`]: image references, registry credentials as `docker login` keeps them,
//!   and authenticated requests to a registry's API.
//! - [`deploy`]: rendering, server-side apply, the record `down` reads, readiness.
//! - [`kube`]: the cluster as tether observes it: one pod cache per workload, kept current
//!   by a watch, that readiness, forwards and logs all read.
//! - [`forward`], [`logs`]: port-forwards and log followers that track pods as they change.
//! - [`engine`]: one walk per change set ([`engine::facts`]), the pure planner
//!   ([`engine::plan`]: what to build, what to apply, what was an input of nothing), the
//!   session that reloads `tether.toml` and runs each round, its typed events and the state
//!   store whose reducer is the only writer.
//! - [`tui`], [`plain`], [`control`], [`logs_history`]: the views of a running `up` (the
//!   terminal UI, one line per event, the local socket behind `status`/`logs`/`trigger`)
//!   and the bounded on-disk log history; views hold no logic of their own.
//! - [`policy`]: the rules an admin keeps in the cluster: who may deploy what into which
//!   profile; `up`, `intercept` and `connect` check them first.
//! - [`shared`]: a profile's shared instances, one for every consumer, their consumers
//!   recorded in the cluster.
//! - [`cluster`]: the kube context, the cluster's identity, and the guard on every command
//!   that changes a cluster.
//! - [`state_dir`]: `.tether/` beside `tether.toml`, private to its user.
//! - [`intercept`]: installing the traffic agent to route a Service's traffic to this
//!   machine, and attaching to it.
//! - [`live`]: the laptop's client of the in-pod supervisor (`tether-agent supervise`).
//! - [`run`]: `tether run -- CMD`, a program in a namespace of its own whose network is the
//!   cluster's (a TUN device, a userspace TCP/IP stack, DNS) plus the laptop's.
//! - [`connect`], [`run`]: cluster names from the laptop (a loopback proxy and DNS server;
//!   any program in namespaces of its own behind a userspace TCP/IP stack).
//! - [`tunnel`], [`accept`]: re-exported from the `tether-wire` crate, which the laptop
//!   shares with the in-cluster side: the laptop↔agent protocol and the accept loop every
//!   listener shares.
//!
//! The in-cluster side (the traffic agent, the connect agent, live update's supervisor) is
//! the `tether-agent` crate under `crates/`: one static binary, depending on `tether-wire`
//! and nothing of this crate.
//! - [`workshop`]: `tether workshop`, the guided workshop's steps and their live checks.
//! - [`init`]: `tether init`, a first `tether.toml` from a folder's Dockerfiles and manifests.
//! - [`doctor`]: `tether doctor`, one live check per thing tether relies on.
//! - [`cli`], [`commands`]: the command line and its edges.

pub mod build;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod connect;
pub mod control;
pub mod deploy;
pub mod doctor;
pub mod engine;
pub mod forward;
pub mod init;
pub mod intercept;
pub mod kube;
pub mod live;
pub mod logs;
pub mod logs_history;
pub mod plain;
pub mod policy;
pub mod registry;
pub mod run;
pub mod shared;
pub mod state_dir;
pub mod tui;
pub mod watch;
pub mod workshop;

/// The wire the laptop shares with the in-cluster side (crate `tether-wire`).
pub use tether_wire::{accept, tunnel};
