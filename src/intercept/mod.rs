//! Intercepts: install the traffic agent next to a Service's workload, point the Service
//! at it, attach this machine to every replica's agent, and undo exactly tether's own
//! changes afterwards.
//!
//! Layout:
//! - [`spec`]: what an intercept is, read without changing anything (each
//!   `-p LOCAL[:REMOTE]`, the plan, the agent's ports, the record kept on the Service).
//! - [`patch`]: tether's changes as JSON patches on the raw objects (install, restore).
//! - `raw`: reads raw JSON and sends those patches, again when the object moved.
//! - `find`: the Service, its Deployment and the port, checked before any change.
//! - `install`: the attach Secret, the agent, the rollout, the Service's targetPort.
//! - `restore`: tether's changes undone, what others changed kept.
//! - `list`: the rows of `tether list` and the intercepts `uninstall` restores.
//! - [`secret`]: the per-Deployment attach token.
//! - [`attach`]: port-forwards and tunnel sessions to every ready agent.
//! - [`ended`]: notices an intercept ended elsewhere (watchers on both objects).
//! - [`leaving`]: asks the agents who is attached, so only the last one out restores.
//! - [`image`]: the agent image (`FROM scratch` + a static tether-agent), pushed once per binary.
//! - [`env`]: the intercepted container's environment, for `--env-file`.
//!
//! What tether changes, and so what restore undoes: the agent container in the pod
//! template (its token from the attach Secret), the intercepted Service ports'
//! targetPorts, the annotations `tether.dev/intercept` (Service) and
//! `tether.dev/intercepted-for` (Deployment), and the Secret. Nothing else is written.

pub mod attach;
pub mod ended;
pub mod env;
mod error;
mod find;
pub mod image;
mod install;
pub mod leaving;
mod list;
pub mod patch;
mod raw;
mod restore;
pub mod secret;
pub mod spec;

pub use self::{
    error::InterceptError,
    find::{Found, find, local_listener},
    install::{Install, InstallKind, install},
    list::{Leftover, Row, intercepted, list},
    restore::{Restored, orphan_secrets, restore},
    spec::{Installed, InterceptedPort, PortSpec, Remote, Target},
};
