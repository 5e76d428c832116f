//! Deploying resources into the cluster and removing them again.
//!
//! Layout:
//! - [`sources`]: a resource's objects from its YAML files, kustomizations and charts.
//! - [`manifest`]: YAML to rendered objects (namespace, pinned images, ownership labels).
//! - [`deployer`]: [`Deployer`], one project's resources rendered and applied in one
//!   cluster, recording each object before it is sent.
//! - [`diff`]: the changed fields between a live object and an apply of it, for `plan`.
//! - [`preview`]: what an apply would do (created, changed fields, unchanged), sending
//!   only dry runs.
//! - [`overrides`](mod@overrides): a profile's `set` written into the rendered objects.
//! - [`apply`]: server-side apply with the `tether` field manager, skipping unchanged objects.
//! - [`record`]: what was applied, written before each send, read by `down`.
//! - [`scale`]: a workload's replica count set by hand, and [`replicas`], the counts
//!   kept for later deploys until `tether.toml` changes.
//! - [`rollout`]: readiness, and the reason in words when a pod is not ready.
//! - [`down`](mod@down): deleting what the record says, while it is still tether's.
//! - [`session`]: the ownership label of one checkout on one machine.
//! - [`error`]: what stops a deploy.

pub mod apply;
mod deployer;
pub mod diff;
mod down;
mod error;
pub mod manifest;
mod overrides;
pub mod preview;
pub mod record;
pub mod replicas;
pub mod rollout;
pub mod scale;
mod session;
pub mod sources;

pub use self::{
    apply::{Applied, Applier, ApplyError, Deleted, ObjectRef},
    deployer::{ApplyCounts, Deployer, Rendered},
    down::{DownReport, down},
    error::DeployError,
    record::Record,
    rollout::Workload,
    session::session_id,
};
