//! The gateway: the shop's public API, in front of the four services.
//!
//! # Routes
//!
//! Public:
//! - `GET /healthz` → 200 `{"status":"ok"}`
//! - `GET /api/v1/products` (and `/products/{id}`,
//!   `/products/search/{name}`, `/products/category/{category}`) → products
//! - `POST /api/v1/users/signup`, `POST /api/v1/users/login` → users
//!
//! Guarded by `Authorization: Bearer <JWT>` (401 if missing, malformed,
//! signed with another secret or expired); the user id comes from the
//! token's `sub`, never from the body:
//! - `POST /api/v1/order/create` `{"product_ids":[...]}` → orders
//! - `GET /api/v1/order/{id}` → orders
//! - `POST /api/v1/payments/pay` `{"order_id","amount"}` → payments
//! - `GET /api/v1/payments/status/{id}` → payments
//!
//! Each of these acts for the token's user only: the services are asked
//! with `?user_id=` (or the payment's `user_id`), so another user's order
//! or payment is a 404, the same as one that does not exist.
//!
//! The services' statuses and JSON bodies pass through unchanged; the
//! gateway itself answers only 400 (a body it cannot parse), 401 (the
//! token), and 502 when a service cannot be reached (`payments service
//! unreachable: ...`).

use axum::{
    Router,
    extract::{FromRef, FromRequestParts, State},
    http::{header::AUTHORIZATION, request::Parts},
    routing::{get, post},
};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shop_common::{
    ApiError, ConfigError, Env, Json, JwtSecret, Path, Peer,
    config::vars,
    jwt,
    peer::{PeerReply, http_client},
    wire::{Health, NewOrder, NewPayment, OwnerQuery},
};

/// What the gateway needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Verifies tokens; the users service must sign with the same.
    pub jwt_secret: JwtSecret,
    /// `USERS_URL`.
    pub users_url: Url,
    /// `PRODUCTS_URL`.
    pub products_url: Url,
    /// `ORDERS_URL`.
    pub orders_url: Url,
    /// `PAYMENTS_URL`.
    pub payments_url: Url,
}

impl Config {
    /// Reads `JWT_SECRET` (required) and the four peer URLs (defaults: the
    /// Services in namespace `api`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            jwt_secret: env.jwt_secret()?,
            users_url: env.peer_url(vars::USERS_URL, vars::DEFAULT_USERS_URL)?,
            products_url: env.peer_url(vars::PRODUCTS_URL, vars::DEFAULT_PRODUCTS_URL)?,
            orders_url: env.peer_url(vars::ORDERS_URL, vars::DEFAULT_ORDERS_URL)?,
            payments_url: env.peer_url(vars::PAYMENTS_URL, vars::DEFAULT_PAYMENTS_URL)?,
        })
    }
}

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    secret: JwtSecret,
    users: Peer,
    products: Peer,
    orders: Peer,
    payments: Peer,
}

impl AppState {
    /// State for `config`, with one HTTP client shared by all peers.
    pub fn new(config: Config) -> Self {
        let http = http_client();
        Self {
            secret: config.jwt_secret,
            users: Peer::new("users", config.users_url, http.clone()),
            products: Peer::new("products", config.products_url, http.clone()),
            orders: Peer::new("orders", config.orders_url, http.clone()),
            payments: Peer::new("payments", config.payments_url, http),
        }
    }
}

impl FromRef<AppState> for JwtSecret {
    fn from_ref(state: &AppState) -> Self {
        state.secret.clone()
    }
}

/// The caller of a guarded route, from a valid bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The token's `sub`: the users service's id.
    pub id: String,
    /// The token's `username`.
    pub username: String,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    JwtSecret: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing token: send the header Authorization: Bearer <token> (from /api/v1/users/login)",
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be: Bearer <token>")
            })?;
        let claims = jwt::verify(token, &JwtSecret::from_ref(state), jwt::now())
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        Ok(Self {
            id: claims.sub,
            username: claims.username,
        })
    }
}

/// `POST /api/v1/order/create`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrder {
    /// The products to order; an id may repeat.
    pub product_ids: Vec<String>,
}

/// `POST /api/v1/payments/pay`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pay {
    /// The order to pay.
    pub order_id: String,
    /// The order's amount, as shown when it was created.
    pub amount: f64,
}

/// The gateway's routes over `state`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/products", get(products))
        .route("/products/{id}", get(product))
        .route("/products/search/{name}", get(search_products))
        .route("/products/category/{category}", get(products_in_category))
        .route("/users/signup", post(signup))
        .route("/users/login", post(login))
        .route("/order/create", post(create_order))
        .route("/order/{id}", get(order))
        .route("/payments/pay", post(pay))
        .route("/payments/status/{id}", get(payment));
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .with_state(state);
    shop_common::finish(routes)
}

/// The gateway as configured: what `main` serves.
pub fn app(config: Config) -> Router {
    router(AppState::new(config))
}

async fn healthz() -> Json<Health> {
    Json(Health::ok())
}

/// A service's answer, passed on with its status and body unchanged.
type Passed = Result<PeerReply, ApiError>;

async fn products(State(state): State<AppState>) -> Passed {
    state.products.get(&["products"]).await
}

async fn product(State(state): State<AppState>, Path(id): Path<String>) -> Passed {
    state.products.get(&["products", &id]).await
}

async fn search_products(State(state): State<AppState>, Path(name): Path<String>) -> Passed {
    state.products.get(&["products", "search", &name]).await
}

async fn products_in_category(
    State(state): State<AppState>,
    Path(category): Path<String>,
) -> Passed {
    state
        .products
        .get(&["products", "category", &category])
        .await
}

async fn signup(State(state): State<AppState>, Json(body): Json<Value>) -> Passed {
    state.users.post(&["signup"], &body).await
}

async fn login(State(state): State<AppState>, Json(body): Json<Value>) -> Passed {
    state.users.post(&["login"], &body).await
}

async fn create_order(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<CreateOrder>,
) -> Passed {
    let new = NewOrder {
        user_id: user.id,
        product_ids: body.product_ids,
    };
    state.orders.post(&["orders"], &new).await
}

async fn order(State(state): State<AppState>, user: AuthUser, Path(id): Path<String>) -> Passed {
    let owner = OwnerQuery::of(user.id);
    state
        .orders
        .get_query(&["orders", &id], &owner.pairs())
        .await
}

async fn pay(State(state): State<AppState>, user: AuthUser, Json(body): Json<Pay>) -> Passed {
    let payment = NewPayment {
        order_id: body.order_id,
        amount: body.amount,
        user_id: user.id,
    };
    state.payments.post(&["payments"], &payment).await
}

async fn payment(State(state): State<AppState>, user: AuthUser, Path(id): Path<String>) -> Passed {
    let owner = OwnerQuery::of(user.id);
    state
        .payments
        .get_query(&["payments", &id], &owner.pairs())
        .await
}
