//! `POST /payments`: pays an order. The handler the workshop fixes.
//!
//! `workspace-demo/solutions/payments-already-paid.patch` changes this file;
//! the crate's `solution` feature compiles it with the patch applied (see
//! `build.rs`). Keep it short: attendees read it, and the patch, on screen.

use axum::{extract::State, http::StatusCode};
use shop_common::{
    ApiError, Json,
    wire::{NewPayment, Payment, to_cents},
};

use crate::AppState;

/// Pays an order: 201 with the payment, after marking the order paid.
/// 404 if the order is unknown; 400 if the amount is not the order's.
pub async fn create_payment(
    State(state): State<AppState>,
    Json(request): Json<NewPayment>,
) -> Result<(StatusCode, Json<Payment>), ApiError> {
    let order = state.orders.get(&request.order_id).await?;

    if to_cents(request.amount) != to_cents(order.amount) {
        return Err(ApiError::bad_request(format!(
            "amount {:.2} does not match the order's amount {:.2}",
            request.amount, order.amount
        )));
    }

    state.orders.mark_paid(&request.order_id).await?;
    let payment = state.payments.record(request, order.amount);
    Ok((StatusCode::CREATED, Json(payment)))
}
