//! Which cluster tether talks to, and whether it may change it.
//!
//! A kube context that does not look like a cluster on this machine is refused unless it
//! is allowed by name: a stray `kubectl config use-context prod` must never turn a save in
//! an editor, or an intercept, into a change to production. Every command that changes a
//! cluster (`up`, `down`, `intercept`, `leave`, `uninstall`) connects through
//! [`Cluster::connect_guarded`].
//!
//! Layout:
//! - [`connect`]: the kubeconfig's context → a client, and the cluster's identity.
//! - [`allow`]: the allow list, from the project's root `tether.toml` or the user's
//!   config file, and which contexts look local.
//! - [`identity`]: who the current credentials are, as the API server says.
//! - [`error`]: what can go wrong, and which of it is bad input.

mod allow;
mod connect;
mod error;
mod identity;

pub use self::{
    allow::{AllowList, looks_local, user_config_file},
    connect::Cluster,
    error::ClusterError,
    identity::{Identity, IdentityError, identity_of, whoami},
};
