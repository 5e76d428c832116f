//! The handlers of `/healthz`, `/signup` and `/login` (documented in the
//! crate's doc): they read the request, use [`AppState`]'s accounts and
//! hasher, and answer JSON.

use std::collections::hash_map::Entry;

use axum::{extract::State, http::StatusCode};
use shop_common::{
    ApiError, Json,
    jwt::{self, Claims},
    wire::{Credentials, Health, Token, User},
};

use crate::{
    MAX_USERNAME_LEN, PasswordError,
    state::{Account, AppState},
};

/// What `GET /hello` answers. The workshop's second step has attendees edit this text
/// and watches the running service answer the new one.
const GREETING: &str = "hello from users";

pub(crate) async fn healthz() -> Json<Health> {
    Json(Health::ok())
}

pub(crate) async fn hello() -> String {
    format!("{GREETING}\n")
}

fn hashing_failed(error: PasswordError) -> ApiError {
    let mut message = error.to_string();
    if let Some(source) = std::error::Error::source(&error) {
        message = format!("{message}: {source}");
    }
    ApiError::internal(message)
}

pub(crate) async fn signup(
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

    let password_hash = state
        .passwords
        .hash(password)
        .await
        .map_err(hashing_failed)?;
    let id = uuid::Uuid::new_v4().to_string();
    match state.accounts().entry(username.clone()) {
        Entry::Occupied(_) => return Err(taken()),
        Entry::Vacant(slot) => {
            slot.insert(Account {
                id: id.clone(),
                password_hash: password_hash.into(),
            });
        }
    }
    tracing::info!(%id, %username, "signed up");
    Ok((StatusCode::CREATED, Json(User { id, username })))
}

pub(crate) async fn login(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Result<Json<Token>, ApiError> {
    let Credentials { username, password } = credentials;
    let account = state.accounts().get(&username).cloned();
    // An unknown name costs the same check as a known one.
    let stored = account
        .as_ref()
        .map_or_else(|| state.passwords.dummy(), |a| a.password_hash.clone());
    let matches = state
        .passwords
        .verify(password, stored)
        .await
        .map_err(hashing_failed)?;
    let Some(account) = account.filter(|_| matches) else {
        return Err(ApiError::unauthorized("invalid username or password"));
    };

    let claims = Claims {
        sub: account.id,
        username,
        exp: jwt::now().saturating_add(state.config.token_ttl.as_secs()),
    };
    Ok(Json(Token {
        token: jwt::sign(&claims, &state.config.jwt_secret),
    }))
}
