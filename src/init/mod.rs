//! `tether init`: a first `tether.toml` for a folder that has a Dockerfile and manifests.
//!
//! Layout, following the data (a folder → a file):
//! - [`scan`]: the folder's Dockerfiles and the Kubernetes objects of its YAML files (the
//!   folder itself, `k8s/`, `manifests/`, `deploy/`), and what was skipped and why.
//! - [`neighbours`]: sibling folders with a `tether.toml` and what their resources
//!   create, so a Namespace or Secret made there is included rather than only noted.
//! - [`plan`]: the pure decisions: which images tether builds (a manifest's image whose
//!   last path component names a Dockerfile here), one resource per workload with the
//!   files that go with it (a Service goes with the workload its selector matches), the
//!   namespace the manifests agree on, port forwards from the Services' ports.
//! - [`render`]: the plan as a commented `tether.toml`, each key saying what it does.
//! - [`write`]: the whole path for a folder ([`generate`]) and the file on disk, never
//!   over an existing one unless forced ([`write()`]).
//! - [`error`]: what can go wrong, and which of it is bad input.

mod error;
pub mod neighbours;
pub mod plan;
pub mod render;
pub mod scan;
mod write;

pub use self::{
    error::InitError,
    plan::{Plan, plan},
    render::render,
    scan::{Scan, scan},
    write::{generate, write},
};
