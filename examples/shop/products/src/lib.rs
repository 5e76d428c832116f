//! The products service: a read-only catalogue.
//!
//! # Routes
//!
//! - `GET /healthz` → 200 `{"status":"ok"}`
//! - `GET /products` → 200, every product
//! - `GET /products/{id}` → 200 the product, 404 if unknown
//! - `GET /products/search/{name}` → 200, products whose name contains
//!   `name`, ignoring case (possibly none)
//! - `GET /products/category/{category}` → 200, products of that category,
//!   ignoring case (possibly none)
//!
//! A product is `{"id","name","category","price"}`. The orders service
//! prices orders through `GET /products/{id}`; the gateway exposes all the
//! routes under `/api/v1`. The catalogue comes from [`catalogue`].

pub mod catalogue;

use std::sync::Arc;

use axum::{Router, extract::State, routing::get};
use shop_common::{ApiError, ConfigError, Env, Json, Path, wire::Health, wire::Product};

/// What the service needs to start. The catalogue is built in; only `PORT`
/// (read by [`shop_common::run`]) is configurable.
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env(_env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

/// Shared by all handlers: the catalogue, never written after start.
#[derive(Debug, Clone)]
pub struct AppState {
    products: Arc<[Product]>,
}

impl AppState {
    /// State holding the seeded catalogue.
    pub fn new(_config: Config) -> Self {
        Self {
            products: catalogue::seeded().into(),
        }
    }
}

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/products", get(list))
        .route("/products/{id}", get(by_id))
        .route("/products/search/{name}", get(search))
        .route("/products/category/{category}", get(by_category))
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

async fn list(State(state): State<AppState>) -> Json<Vec<Product>> {
    Json(state.products.to_vec())
}

async fn by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Product>, ApiError> {
    state
        .products
        .iter()
        .find(|product| product.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("product {id} not found")))
}

async fn search(State(state): State<AppState>, Path(name): Path<String>) -> Json<Vec<Product>> {
    let needle = name.to_lowercase();
    Json(
        state
            .products
            .iter()
            .filter(|product| product.name.to_lowercase().contains(&needle))
            .cloned()
            .collect(),
    )
}

async fn by_category(
    State(state): State<AppState>,
    Path(category): Path<String>,
) -> Json<Vec<Product>> {
    Json(
        state
            .products
            .iter()
            .filter(|product| product.category.eq_ignore_ascii_case(&category))
            .cloned()
            .collect(),
    )
}
