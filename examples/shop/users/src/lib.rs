//! The users service: sign-up and login.
//!
//! # Routes
//!
//! - `GET /healthz` → 200 `{"status":"ok"}`
//! - `GET /hello` → 200, the text of `GREETING` in `routes.rs`: the line the
//!   workshop has attendees edit, to see a save served
//! - `POST /signup` `{"username","password"}` → 201 `{"id","username"}`;
//!   409 if the name is taken, 400 if a field is empty or the JSON is bad
//! - `POST /login` `{"username","password"}` → 200 `{"token":"<JWT>"}`;
//!   401 on an unknown name or a wrong password (the same message, and the
//!   same time: an unknown name is checked against a dummy hash)
//!
//! Tokens are HS256 JWTs (`sub` = user id, `username`, `exp`) signed with
//! `JWT_SECRET`, which the gateway uses to check them; the service does not
//! start without it.
//!
//! # Layout
//!
//! - [`config`]: [`Config`], from the environment or built by tests.
//! - [`passwords`]: argon2id in bounded memory: a few hashes at a time,
//!   each in a reused buffer, so the pod stays under its memory limit.
//! - `state`: the accounts, in memory only (a restart forgets them: sign
//!   up again), and the hasher, shared by the handlers.
//! - `routes`: the handlers.

pub mod config;
pub mod passwords;
mod routes;
mod state;

use axum::{
    Router,
    routing::{get, post},
};

pub use self::{
    config::{Config, DEFAULT_TOKEN_TTL, TOKEN_TTL_SECS},
    passwords::{PasswordError, Passwords},
    state::AppState,
};
/// Re-exported so callers can build [`Config::password_hashing`].
pub use argon2;

/// Longest accepted username, in characters.
pub const MAX_USERNAME_LEN: usize = 64;

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/hello", get(routes::hello))
        .route("/signup", post(routes::signup))
        .route("/login", post(routes::login))
        .with_state(state);
    shop_common::finish(routes)
}

/// The service as configured: what `main` serves.
pub fn app(config: Config) -> Router {
    router(AppState::new(config))
}
