//! The cluster as tether observes it: caches that watches keep current (kube-runtime's
//! `watcher` feeding a `reflector` store), shared by every reader, instead of each reader
//! asking the API server on a timer.
//!
//! Layout:
//! - `workload`: [`Workload`], a Deployment, StatefulSet or DaemonSet ([`WorkloadKind`])
//!   a resource renders, and its pod selector.
//! - `pods`: [`PodSet`], the pods of one workload, and the pure facts read from pods
//!   (readiness, counts, restarts). Readiness ([`crate::deploy::rollout`]), forwards
//!   (the newest ready pod, [`crate::forward`]) and log followers ([`crate::logs`]) all
//!   read one set per workload and wait on its changes.
//! - [`port`]: a port-forward to one pod's port, opened within a time limit.
//! - [`exec`]: a command run in a pod's container, as `kubectl exec` runs it.

pub mod exec;
mod pods;
pub mod port;
mod workload;

pub use self::{
    pods::{PodCounts, PodSet, Replica, WatchState, count, is_ready, replicas},
    workload::{Workload, WorkloadKind},
};
