//! The users service: sign-up and login.
//!
//! # Routes
//!
//! - `GET /healthz` → 200 `{"status":"ok"}`
//! - `POST /signup` `{"username","password"}` → 201 `{"id","username"}`;
//!   409 if the name is taken, 400 if a field is empty or the JSON is bad
//! - `POST /login` `{"username","password"}` → 200 `{"token":"<JWT>"}`;
//!   401 on an unknown name or a wrong password (the same message for both)
//!
//! Passwords are kept only as argon2id hashes, computed off the async
//! threads. Tokens are HS256 JWTs (`sub` = user id, `username`, `exp`)
//! signed with `JWT_SECRET`, which the gateway uses to check them. Users
//! live in memory: a restart forgets them.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use axum::{Router, extract::State, http::StatusCode, routing::get, routing::post};
use shop_common::{
    ApiError, ConfigError, Env, Json, JwtSecret,
    jwt::{self, Claims},
    wire::{Credentials, Health, Token, User},
};

/// Re-exported so callers can build [`Config::password_hashing`].
pub use argon2;

/// Environment variable: how long a token stays valid, in seconds.
pub const TOKEN_TTL_SECS: &str = "TOKEN_TTL_SECS";
/// Default of [`TOKEN_TTL_SECS`]: eight hours, one workshop day.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);
/// Longest accepted username, in characters.
pub const MAX_USERNAME_LEN: usize = 64;

/// What the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Signs the tokens; the gateway must have the same.
    pub jwt_secret: JwtSecret,
    /// Lifetime of a token from login.
    pub token_ttl: Duration,
    /// Cost of argon2id. The default is OWASP's recommendation; tests use a
    /// cheaper one because unoptimized builds hash slowly.
    pub password_hashing: argon2::Params,
}

impl Config {
    /// The defaults, with `jwt_secret`.
    pub fn new(jwt_secret: JwtSecret) -> Self {
        Self {
            jwt_secret,
            token_ttl: DEFAULT_TOKEN_TTL,
            password_hashing: argon2::Params::DEFAULT,
        }
    }

    /// Reads `JWT_SECRET` and `TOKEN_TTL_SECS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let ttl = env.parse_or(TOKEN_TTL_SECS, DEFAULT_TOKEN_TTL.as_secs())?;
        Ok(Self {
            token_ttl: Duration::from_secs(ttl),
            ..Self::new(env.jwt_secret())
        })
    }
}

/// A user as stored: never leaves the service.
#[derive(Debug, Clone)]
struct Account {
    id: String,
    /// PHC string: `$argon2id$v=19$m=...,t=...,p=...$salt$hash`.
    password_hash: String,
}

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    config: Arc<Config>,
    /// Accounts by username; the only state written after start.
    accounts: Arc<Mutex<HashMap<String, Account>>>,
}

impl AppState {
    /// State with no users yet.
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
            accounts: Arc::default(),
        }
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        // No handler panics while holding the lock; if one ever did, the map
        // is still consistent (every write is a single insert).
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hasher(&self) -> Argon2<'static> {
        Argon2::from(&self.config.password_hashing)
    }
}

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/signup", post(signup))
        .route("/login", post(login))
        .with_state(state);
    shop_common::finish(routes)
}

/// The service as configured: what `main` serves.
pub fn app(config: Config) -> Router {
    router(AppState::new(config))
}

async fn healthz() -> Json<Health> {
    Json(Health::ok())
}

async fn signup(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let Credentials { username, password } = credentials;
    if username.trim().is_empty() {
        return Err(ApiError::bad_request("username must not be empty"));
    }
    if username.chars().count() > MAX_USERNAME_LEN {
        return Err(ApiError::bad_request(format!(
            "username must be at most {MAX_USERNAME_LEN} characters"
        )));
    }
    if password.is_empty() {
        return Err(ApiError::bad_request("password must not be empty"));
    }
    let taken = || ApiError::conflict(format!("username {username:?} is already taken"));
    // Checked before hashing to answer fast, and again on insert in case
    // another sign-up of the same name finished meanwhile.
    if state.accounts().contains_key(&username) {
        return Err(taken());
    }

    let hasher = state.hasher();
    let password_hash =
        tokio::task::spawn_blocking(move || hasher.hash_password(password.as_bytes()))
            .await
            .map_err(|e| ApiError::internal(format!("password hashing stopped: {e}")))?
            .map_err(|e| ApiError::internal(format!("password hashing failed: {e}")))?
            .to_string();

    let id = uuid::Uuid::new_v4().to_string();
    match state.accounts().entry(username.clone()) {
        Entry::Occupied(_) => return Err(taken()),
        Entry::Vacant(slot) => {
            slot.insert(Account {
                id: id.clone(),
                password_hash,
            });
        }
    }
    tracing::info!(%id, %username, "signed up");
    Ok((StatusCode::CREATED, Json(User { id, username })))
}

async fn login(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Result<Json<Token>, ApiError> {
    let Credentials { username, password } = credentials;
    let refused = || ApiError::unauthorized("invalid username or password");
    let Some(account) = state.accounts().get(&username).cloned() else {
        return Err(refused());
    };

    let hasher = state.hasher();
    let stored = account.password_hash;
    let matches = tokio::task::spawn_blocking(move || {
        hasher
            .verify_password(password.as_bytes(), stored.as_str())
            .is_ok()
    })
    .await
    .map_err(|e| ApiError::internal(format!("password check stopped: {e}")))?;
    if !matches {
        return Err(refused());
    }

    let claims = Claims {
        sub: account.id,
        username,
        exp: jwt::now().saturating_add(state.config.token_ttl.as_secs()),
    };
    Ok(Json(Token {
        token: jwt::sign(&claims, &state.config.jwt_secret),
    }))
}
