//! The payments service: pays orders. Ships with the workshop's flaw.
//!
//! # Routes
//!
//! - `GET /healthz` → 200 `{"status":"ok"}`
//! - `POST /payments` `{"order_id","amount","user_id"}` → 201
//!   `{"id","user_id","order_id","amount","status":"paid"}`, after marking
//!   the order paid in the orders service; 404 if the order is unknown, 400
//!   if the amount differs from the order's (compared in cents), 502 if the
//!   orders service cannot be reached ([`pay`])
//! - `GET /payments/{id}` → 200 the payment; 404 if unknown
//!
//! A payer pays only their own orders: [`pay`] sees the orders service as
//! the payer does (`?user_id=` on every call, see [`Orders::of`]), so
//! someone else's order is a 404, as if it did not exist. With
//! `?user_id=`, someone else's payment is a 404 too.
//!
//! # The flaw
//!
//! Paying an order that is already paid succeeds: the money is taken twice.
//! The workshop finds this through the gateway, then runs the fixed service
//! locally and intercepts `payments-svc` to it. The fix is
//! `workspace-demo/solutions/payments-already-paid.patch` (a 403
//! `{"error":"Already Paid"}`); `cargo run -p payments --features solution`
//! runs it without touching the source, because `build.rs` applies the
//! patch to `src/pay.rs` at build time and fails if it no longer applies.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use axum::{
    Router,
    extract::State,
    routing::{get, post},
};
use reqwest::Url;
use shop_common::{
    ApiError, ConfigError, Env, Json, Path, Peer, Query,
    config::vars,
    peer::http_client,
    wire::{
        Health, NewPayment, OrderView, OwnerQuery, Payment, PaymentStatus, from_cents, to_cents,
    },
};

#[cfg(not(feature = "solution"))]
pub mod pay;

/// `POST /payments` (`src/pay.rs` with the workshop's solution applied by
/// `build.rs`): also refuses an order that is already paid.
#[cfg(feature = "solution")]
pub mod pay {
    include!(concat!(env!("OUT_DIR"), "/pay.rs"));
}

/// What the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the orders service (`ORDERS_URL`).
    pub orders_url: Url,
}

impl Config {
    /// Reads `ORDERS_URL` (default `http://orders-svc.api`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            orders_url: env.peer_url(vars::ORDERS_URL, vars::DEFAULT_ORDERS_URL)?,
        })
    }
}

/// The orders service, as the payments service uses it: on behalf of one
/// user ([`Orders::of`]), whose orders alone it finds.
#[derive(Debug, Clone)]
pub struct Orders {
    peer: Peer,
    /// Whose orders the calls may see.
    owner: OwnerQuery,
}

impl Orders {
    /// The same service, seeing only `user_id`'s orders: another user's
    /// order is the orders service's 404, as if it did not exist.
    pub fn of(&self, user_id: &str) -> Self {
        Self {
            peer: self.peer.clone(),
            owner: OwnerQuery::of(user_id),
        }
    }

    /// The order `id` and its amount; its 404 passes through.
    pub async fn get(&self, id: &str) -> Result<OrderView, ApiError> {
        self.peer
            .get_query(&["orders", id], &self.owner.pairs())
            .await?
            .json()
    }

    /// Sets the order `id`'s status to `paid`.
    pub async fn mark_paid(&self, id: &str) -> Result<OrderView, ApiError> {
        let mut query = vec![("status", "paid")];
        query.extend(self.owner.pairs());
        self.peer
            .patch_query(&["orders", id, "status"], &query)
            .await?
            .json()
    }
}

/// The payments made, by id.
#[derive(Debug, Clone, Default)]
pub struct Payments(Arc<Mutex<HashMap<String, Payment>>>);

impl Payments {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Payment>> {
        // Every write is a single insert: a panic elsewhere cannot leave
        // the map half-changed.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a successful payment of `amount` for `request`'s order.
    pub fn record(&self, request: NewPayment, amount: f64) -> Payment {
        let payment = Payment {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: request.user_id,
            order_id: request.order_id,
            amount: from_cents(to_cents(amount)),
            status: PaymentStatus::Paid,
        };
        self.lock().insert(payment.id.clone(), payment.clone());
        tracing::info!(id = %payment.id, order_id = %payment.order_id, amount, "payment recorded");
        payment
    }

    /// The payment `id`, if any.
    pub fn get(&self, id: &str) -> Option<Payment> {
        self.lock().get(id).cloned()
    }
}

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where orders are read and marked paid.
    pub orders: Orders,
    /// Where payments are kept.
    pub payments: Payments,
}

impl AppState {
    /// State with no payments yet.
    pub fn new(config: Config) -> Self {
        Self {
            orders: Orders {
                peer: Peer::new("orders", config.orders_url, http_client()),
                owner: OwnerQuery::default(),
            },
            payments: Payments::default(),
        }
    }
}

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/payments", post(pay_own_order))
        .route("/payments/{id}", get(by_id))
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

/// `POST /payments`: [`pay::create_payment`] with the orders service seen
/// as the payer sees it, so only the payer's own orders can be paid.
async fn pay_own_order(
    State(state): State<AppState>,
    Json(request): Json<NewPayment>,
) -> Result<(axum::http::StatusCode, Json<Payment>), ApiError> {
    let payer = AppState {
        orders: state.orders.of(&request.user_id),
        payments: state.payments,
    };
    pay::create_payment(State(payer), Json(request)).await
}

async fn by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(owner): Query<OwnerQuery>,
) -> Result<Json<Payment>, ApiError> {
    state
        .payments
        .get(&id)
        .filter(|payment| owner.allows(&payment.user_id))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("payment {id} not found")))
}
