//! Registries as developers already use them: image references as Docker reads them,
//! credentials where `docker login` put them, and the registry API's token flow.
//!
//! - [`reference`]: `localhost:5000/users`, `ghcr.io/org/users@sha256:…`, `nginx` parsed
//!   and normalised as Docker and containerd do.
//! - [`credentials`]: `~/.docker/config.json` (or `$DOCKER_CONFIG`): `auths`,
//!   `credHelpers`, `credsStore` and the `docker-credential-*` helpers they name.
//! - [`challenge`]: the pure parts of the token flow (`WWW-Authenticate`, token URLs).
//! - [`access`]: requests to one registry's API with what its challenge asks for.

pub mod access;
pub mod challenge;
pub mod credentials;
pub mod reference;

pub use self::{
    access::{Access, AccessError},
    reference::Reference,
};
