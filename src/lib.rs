//! tether: the developer inner loop on Kubernetes.
//!
//! Layout, following the data of `tether up` (watch → plan → build → push → apply → observe):
//! - [`config`]: `tether.toml`, validated into a [`config::Project`].
//! - [`watch`]: file events to change sets.
//! - [`build`]: input digests, host builds, image builds and pushes (bollard).
//! - [`deploy`]: rendering, server-side apply, the record `down` reads, readiness.
//! - [`kube`]: the cluster as tether observes it: one pod cache per workload, kept current
//!   by a watch, that readiness, forwards and logs all read.
//! - [`forward`], [`logs`]: port-forwards and log followers that track pods as they change.
//! - [`engine`]: the session that runs rounds, its events and its state store.
//! - [`tui`], [`control`], [`logs_history`]: the views of a running `up` (the terminal UI,
//!   the local socket behind `status`/`logs`/`trigger`) and the bounded on-disk log history.
//! - [`cluster`]: the kube context and the safety check on it.
//! - [`tunnel`], [`agent`], [`intercept`]: the laptop↔agent protocol, the in-cluster
//!   traffic agent, and installing it to route a Service's traffic to this machine.
//! - [`cli`], [`commands`]: the command line and its edges.

pub mod agent;
pub mod build;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod control;
pub mod deploy;
pub mod engine;
pub mod forward;
pub mod intercept;
pub mod kube;
pub mod logs;
pub mod logs_history;
pub mod tui;
pub mod tunnel;
pub mod watch;
