//! The orders service: creates orders, priced through the products service.
//!
//! # Routes
//!
//! - `GET /healthz` → 200 `{"status":"ok"}`
//! - `POST /orders` `{"user_id","product_ids":[...]}` → 201
//!   `{"order":{"id","user_id","product_ids","status":"pending"},"amount"}`;
//!   404 naming the first unknown product, 400 on an empty list or bad JSON,
//!   502 if the products service cannot be reached
//! - `GET /orders/{id}` → 200, same shape; 404 if unknown
//! - `PATCH /orders/{id}/status?status=paid` → 200, same shape; 400 unless
//!   the status is `pending`, `paid` or `cancelled`; 404 if unknown
//!
//! Both take an optional `&user_id=`: then another user's order is a 404
//! too, the same answer as an unknown id (the gateway and payments always
//! send it for the caller, so nobody reads or pays someone else's order).
//!
//! The amount is the sum of the products' prices when the order is made,
//! added up in cents. The payments service reads orders and marks them
//! paid through these routes. Orders live in memory.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, patch, post},
};
use reqwest::Url;
use shop_common::{
    ApiError, ConfigError, Env, Json, Path, Peer, Query,
    config::vars,
    peer::http_client,
    wire::{
        Health, NewOrder, Order, OrderStatus, OrderView, OwnerQuery, Product, StatusQuery,
        from_cents, to_cents,
    },
};

/// Most products one order may hold.
pub const MAX_PRODUCTS_PER_ORDER: usize = 100;

/// What the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the products service (`PRODUCTS_URL`).
    pub products_url: Url,
}

impl Config {
    /// Reads `PRODUCTS_URL` (default `http://products-svc.api`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            products_url: env.peer_url(vars::PRODUCTS_URL, vars::DEFAULT_PRODUCTS_URL)?,
        })
    }
}

/// An order and its amount in cents, as stored.
#[derive(Debug, Clone)]
struct Stored {
    order: Order,
    amount_cents: i64,
}

impl Stored {
    fn view(&self) -> OrderView {
        OrderView {
            order: self.order.clone(),
            amount: from_cents(self.amount_cents),
        }
    }
}

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Prices come from here.
    products: Peer,
    /// Orders by id; the only state written after start.
    orders: Arc<Mutex<HashMap<String, Stored>>>,
}

impl AppState {
    /// State with no orders yet.
    pub fn new(config: Config) -> Self {
        Self {
            products: Peer::new("products", config.products_url, http_client()),
            orders: Arc::default(),
        }
    }

    fn orders(&self) -> MutexGuard<'_, HashMap<String, Stored>> {
        // Every write is a single insert or field update: a panic elsewhere
        // cannot leave the map half-changed.
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/orders", post(create))
        .route("/orders/{id}", get(by_id))
        .route("/orders/{id}/status", patch(set_status))
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

async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    if new.user_id.trim().is_empty() {
        return Err(ApiError::bad_request("user_id must not be empty"));
    }
    if new.product_ids.is_empty() {
        return Err(ApiError::bad_request("product_ids must not be empty"));
    }
    if new.product_ids.len() > MAX_PRODUCTS_PER_ORDER {
        return Err(ApiError::bad_request(format!(
            "an order holds at most {MAX_PRODUCTS_PER_ORDER} products"
        )));
    }

    let mut amount_cents: i64 = 0;
    for id in &new.product_ids {
        let product: Product = state.products.get(&["products", id]).await?.json()?;
        amount_cents = amount_cents.saturating_add(to_cents(product.price));
    }

    let stored = Stored {
        order: Order {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: new.user_id,
            product_ids: new.product_ids,
            status: OrderStatus::Pending,
        },
        amount_cents,
    };
    let view = stored.view();
    state.orders().insert(stored.order.id.clone(), stored);
    tracing::info!(id = %view.order.id, amount = view.amount, "order created");
    Ok((StatusCode::CREATED, Json(view)))
}

async fn by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(owner): Query<OwnerQuery>,
) -> Result<Json<OrderView>, ApiError> {
    state
        .orders()
        .get(&id)
        .filter(|stored| owner.allows(&stored.order.user_id))
        .map(|stored| Json(stored.view()))
        .ok_or_else(|| not_found(&id))
}

async fn set_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
    Query(owner): Query<OwnerQuery>,
) -> Result<Json<OrderView>, ApiError> {
    let status: OrderStatus = query.status.parse().map_err(ApiError::bad_request)?;
    let mut orders = state.orders();
    let stored = orders
        .get_mut(&id)
        .filter(|stored| owner.allows(&stored.order.user_id))
        .ok_or_else(|| not_found(&id))?;
    stored.order.status = status;
    tracing::info!(%id, %status, "order status set");
    Ok(Json(stored.view()))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("order {id} not found"))
}
