//! What the five shop services share, so each of them is only its routes.
//!
//! # Layout
//!
//! - [`error`]: [`ApiError`], the one error type of every handler; it always
//!   answers with a JSON body `{"error": "..."}` and the status it carries.
//! - [`extract`]: [`Json`], [`Query`] and [`Path`], drop-in replacements for
//!   axum's extractors whose rejections are [`ApiError`]s (so a malformed body
//!   is a JSON 400, not axum's plain-text answer).
//! - [`jwt`]: HS256 tokens: the users service signs them, the gateway verifies
//!   them.
//! - [`config`]: reads the environment ([`Env`], injectable in tests) into
//!   validated values: the port, peer URLs, the JWT secret.
//! - [`peer`]: HTTP calls to another shop service; a peer that cannot be
//!   reached becomes a 502 naming it.
//! - [`wire`]: the JSON shapes the services exchange, defined once so the
//!   sender and the receiver cannot drift apart.
//! - [`http`]: what every router gets (JSON fallbacks, one access-log line
//!   per request), [`serve`] with graceful shutdown, and [`run`], the whole
//!   body of each service's `main`.
//! - [`testing`]: starts a router on `127.0.0.1:0` for tests, stopped on drop.

pub mod config;
pub mod error;
pub mod extract;
pub mod http;
pub mod jwt;
pub mod peer;
pub mod testing;
pub mod wire;

pub use config::{ConfigError, Env};
pub use error::ApiError;
pub use extract::{Json, Path, Query};
pub use http::{finish, run, serve, shutdown_signal};
pub use jwt::JwtSecret;
pub use peer::Peer;
