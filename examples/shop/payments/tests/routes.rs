//! The payments routes over HTTP, with real orders and products services
//! behind them. The double payment is accepted in the shipped service and
//! refused under the `solution` feature:
//! `cargo test -p payments --features solution`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shop_common::testing::{Running, closed_url, spawn};

/// Products, orders wired to it, payments wired to orders.
struct Shop {
    payments: Running,
    orders: Running,
    _products: Running,
}

async fn start() -> Shop {
    let products = spawn(products::app(products::Config::default()))
        .await
        .expect("bind a loopback port");
    let orders = spawn(orders::app(orders::Config {
        products_url: products.url.clone(),
    }))
    .await
    .expect("bind a loopback port");
    let payments = spawn(payments::app(payments::Config {
        orders_url: orders.url.clone(),
    }))
    .await
    .expect("bind a loopback port");
    Shop {
        payments,
        orders,
        _products: products,
    }
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

impl Shop {
    /// Orders Loafers and Sunglasses (109.08) for `u-1`; returns the id.
    async fn order(&self) -> String {
        let (status, body) = send(
            reqwest::Client::new()
                .post(self.orders.at("/orders"))
                .json(&json!({"user_id": "u-1", "product_ids": ["L9ECAV7KIM", "UJZDE8GXD6"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["order"]["id"]
            .as_str()
            .expect("an order id")
            .to_owned()
    }

    async fn pay(&self, order_id: &str, amount: f64) -> (StatusCode, Value) {
        send(
            reqwest::Client::new()
                .post(self.payments.at("/payments"))
                .json(&json!({"order_id": order_id, "amount": amount, "user_id": "u-1"})),
        )
        .await
    }

    async fn order_status(&self, order_id: &str) -> Value {
        let (_, body) =
            send(reqwest::Client::new().get(self.orders.at(&format!("/orders/{order_id}")))).await;
        body["order"]["status"].clone()
    }
}

#[tokio::test]
async fn healthz() {
    let shop = start().await;
    assert_eq!(
        send(reqwest::Client::new().get(shop.payments.at("/healthz"))).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn paying_marks_the_order_paid_and_records_the_payment() {
    let shop = start().await;
    let order_id = shop.order().await;
    assert_eq!(shop.order_status(&order_id).await, "pending");

    let (status, payment) = shop.pay(&order_id, 109.08).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = payment["id"].as_str().expect("a payment id");
    assert_eq!(
        payment,
        json!({"id": id, "user_id": "u-1", "order_id": order_id, "amount": 109.08, "status": "paid"})
    );
    assert_eq!(shop.order_status(&order_id).await, "paid");

    let fetched =
        send(reqwest::Client::new().get(shop.payments.at(&format!("/payments/{id}")))).await;
    assert_eq!(fetched, (StatusCode::OK, payment));
}

#[tokio::test]
async fn wrong_amount_is_400_and_leaves_the_order_pending() {
    let shop = start().await;
    let order_id = shop.order().await;
    assert_eq!(
        shop.pay(&order_id, 100.0).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "amount 100.00 does not match the order's amount 109.08"})
        )
    );
    assert_eq!(shop.order_status(&order_id).await, "pending");
    // Within a cent's rounding is the same amount.
    assert_eq!(
        shop.pay(&order_id, 109.0800001).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn unknown_order_is_404() {
    let shop = start().await;
    assert_eq!(
        shop.pay("no-such-order", 1.0).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "order no-such-order not found"})
        )
    );
}

#[tokio::test]
async fn unknown_payment_is_404() {
    let shop = start().await;
    assert_eq!(
        send(reqwest::Client::new().get(shop.payments.at("/payments/nope"))).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "payment nope not found"})
        )
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let shop = start().await;
    let (status, body) = send(
        reqwest::Client::new()
            .post(shop.payments.at("/payments"))
            .header("content-type", "application/json")
            .body(r#"{"order_id": "x", "amount": "lots"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("amount")),
        "{body}"
    );
}

#[tokio::test]
async fn orders_down_is_502_naming_orders() {
    let payments = spawn(payments::app(payments::Config {
        orders_url: closed_url().await.expect("a free port"),
    }))
    .await
    .expect("bind a loopback port");
    let (status, body) = send(
        reqwest::Client::new()
            .post(payments.at("/payments"))
            .json(&json!({"order_id": "o-1", "amount": 1.0, "user_id": "u-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let error = body["error"].as_str().expect("an error message");
    assert!(error.starts_with("orders service unreachable: "), "{error}");
}

/// The workshop's flaw, as shipped: the second payment is taken too.
#[cfg(not(feature = "solution"))]
#[tokio::test]
async fn flaw_paying_twice_is_accepted() {
    let shop = start().await;
    let order_id = shop.order().await;
    let (first, one) = shop.pay(&order_id, 109.08).await;
    let (second, two) = shop.pay(&order_id, 109.08).await;
    assert_eq!((first, second), (StatusCode::CREATED, StatusCode::CREATED));
    assert_ne!(one["id"], two["id"], "two payments for one order");
}

/// The fix: the second payment is refused.
#[cfg(feature = "solution")]
#[tokio::test]
async fn solution_paying_twice_is_403_already_paid() {
    let shop = start().await;
    let order_id = shop.order().await;
    assert_eq!(shop.pay(&order_id, 109.08).await.0, StatusCode::CREATED);
    assert_eq!(
        shop.pay(&order_id, 109.08).await,
        (StatusCode::FORBIDDEN, json!({"error": "Already Paid"}))
    );
    assert_eq!(shop.order_status(&order_id).await, "paid");
}

/// A payer can pay only their own orders and read only their own
/// payments: someone else's are answered as if they did not exist (404,
/// not 403), whether the order is still pending or already paid.
#[tokio::test]
async fn another_users_order_and_payment_are_404() {
    let shop = start().await;
    let order_id = shop.order().await;
    let pay_as = |user: &'static str| {
        let order_id = order_id.clone();
        let at = shop.payments.at("/payments");
        async move {
            send(
                reqwest::Client::new()
                    .post(at)
                    .json(&json!({"order_id": order_id, "amount": 109.08, "user_id": user})),
            )
            .await
        }
    };
    let order_not_found = (
        StatusCode::NOT_FOUND,
        json!({"error": format!("order {order_id} not found")}),
    );

    assert_eq!(pay_as("u-2").await, order_not_found);
    assert_eq!(shop.order_status(&order_id).await, "pending");

    let (status, payment) = pay_as("u-1").await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(
        pay_as("u-2").await,
        order_not_found,
        "already paid, still 404"
    );

    let id = payment["id"].as_str().expect("a payment id");
    let read_as = |user: &str| {
        reqwest::Client::new().get(shop.payments.at(&format!("/payments/{id}?user_id={user}")))
    };
    assert_eq!(
        send(read_as("u-2")).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": format!("payment {id} not found")})
        )
    );
    assert_eq!(send(read_as("u-1")).await, (StatusCode::OK, payment));
}
