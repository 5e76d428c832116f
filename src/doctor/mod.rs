//! `tether doctor`: whether this machine and its kube context are ready for tether, one
//! check per thing tether relies on, each bounded by a timeout where it waits.
//!
//! Layout, in the order the checks run:
//! - [`context`]: the kube context (and the context guard's verdict), the API server.
//! - [`rbac`]: the requests tether makes, asked as `SelfSubjectAccessReview`s.
//! - [`engine`]: the Docker-API engine, connected as `tether up` connects.
//! - [`registry`]: the registry from the laptop, with the user's credentials.
//! - [`pull`]: the registry from the cluster: a probe pod pulls the agent image (or
//!   [`probe_image`], a 129-byte static program, when that would need a compiler).
//! - [`userns`]: the namespaces `tether run` makes.
//! - [`diagnose`]: runs them in order; [`report`]: the lines and the JSON;
//!   [`error`]: what a check finds wrong, and its fix.

mod context;
mod diagnose;
mod engine;
mod error;
mod probe_image;
mod pull;
mod rbac;
mod registry;
mod report;
mod userns;

pub use self::{
    diagnose::{Options, diagnose},
    error::DoctorError,
    rbac::{NEEDS, Need},
    report::{Line, Report, Status},
};
