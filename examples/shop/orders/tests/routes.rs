//! The orders routes over HTTP, with a real products service behind them.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shop_common::testing::{Running, closed_url, spawn};

/// A products service and an orders service wired to it. The products
/// service is returned too: dropping it would stop it.
async fn start() -> (Running, Running) {
    let products = spawn(products::app(products::Config::default()))
        .await
        .expect("bind a loopback port");
    let orders = spawn(orders::app(orders::Config {
        products_url: products.url.clone(),
    }))
    .await
    .expect("bind a loopback port");
    (orders, products)
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

async fn create(orders: &Running, body: Value) -> (StatusCode, Value) {
    send(
        reqwest::Client::new()
            .post(orders.at("/orders"))
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn creates_a_pending_order_priced_in_cents() {
    let (orders, _products) = start().await;
    let (status, body) = create(
        &orders,
        json!({"user_id": "u-1", "product_ids": ["L9ECAV7KIM", "UJZDE8GXD6"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["order"]["id"]
        .as_str()
        .expect("an order id")
        .to_owned();
    let expected = json!({
        "order": {
            "id": id,
            "user_id": "u-1",
            "product_ids": ["L9ECAV7KIM", "UJZDE8GXD6"],
            "status": "pending"
        },
        "amount": 109.08
    });
    assert_eq!(body, expected);
    // The JSON text itself shows two decimals, not 109.08000000000001.
    assert!(
        serde_json::to_string(&body)
            .unwrap()
            .contains("\"amount\":109.08")
    );

    let fetched = send(reqwest::Client::new().get(orders.at(&format!("/orders/{id}")))).await;
    assert_eq!(fetched, (StatusCode::OK, expected));
}

#[tokio::test]
async fn unknown_product_is_404_naming_it() {
    let (orders, _products) = start().await;
    assert_eq!(
        create(
            &orders,
            json!({"user_id": "u-1", "product_ids": ["L9ECAV7KIM", "NOSUCHTHNG"]})
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "product NOSUCHTHNG not found"})
        )
    );
}

#[tokio::test]
async fn empty_order_and_bad_json_are_400() {
    let (orders, _products) = start().await;
    assert_eq!(
        create(&orders, json!({"user_id": "u-1", "product_ids": []})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "product_ids must not be empty"})
        )
    );
    let (status, body) = send(
        reqwest::Client::new()
            .post(orders.at("/orders"))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("JSON")),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_order_is_404() {
    let (orders, _products) = start().await;
    let client = reqwest::Client::new();
    let not_found = (
        StatusCode::NOT_FOUND,
        json!({"error": "order nope not found"}),
    );
    assert_eq!(send(client.get(orders.at("/orders/nope"))).await, not_found);
    assert_eq!(
        send(client.patch(orders.at("/orders/nope/status?status=paid"))).await,
        not_found
    );
}

#[tokio::test]
async fn status_can_be_set_to_a_known_value_only() {
    let (orders, _products) = start().await;
    let (_, body) = create(
        &orders,
        json!({"user_id": "u-1", "product_ids": ["J50CE9UVW5"]}),
    )
    .await;
    let id = body["order"]["id"].as_str().expect("an order id");
    let client = reqwest::Client::new();
    let status_url = |query: &str| orders.at(&format!("/orders/{id}/status{query}"));

    let (status, body) = send(client.patch(status_url("?status=paid"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["order"]["status"], "paid");
    assert_eq!(body["amount"], 8.99);

    assert_eq!(
        send(client.patch(status_url("?status=shipped"))).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid status \"shipped\": expected pending, paid or cancelled"})
        )
    );
    let (status, body) = send(client.patch(status_url(""))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing field `status`")),
        "{body}"
    );
}

#[tokio::test]
async fn products_down_is_502_naming_products() {
    let orders = spawn(orders::app(orders::Config {
        products_url: closed_url().await.expect("a free port"),
    }))
    .await
    .expect("bind a loopback port");
    let (status, body) = create(
        &orders,
        json!({"user_id": "u-1", "product_ids": ["L9ECAV7KIM"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let error = body["error"].as_str().expect("an error message");
    assert!(
        error.starts_with("products service unreachable: "),
        "{error}"
    );
}

/// With `?user_id=`, another user's order is as unknown as one that does
/// not exist: the same 404, and its status cannot be set.
#[tokio::test]
async fn another_users_order_is_404() {
    let (orders, _products) = start().await;
    let (_, body) = create(
        &orders,
        json!({"user_id": "u-1", "product_ids": ["J50CE9UVW5"]}),
    )
    .await;
    let id = body["order"]["id"].as_str().expect("an order id");
    let client = reqwest::Client::new();
    let not_found = (
        StatusCode::NOT_FOUND,
        json!({"error": format!("order {id} not found")}),
    );

    let as_user = |user: &str| orders.at(&format!("/orders/{id}?user_id={user}"));
    assert_eq!(send(client.get(as_user("u-2"))).await, not_found);
    assert_eq!(send(client.get(as_user(""))).await, not_found);
    let status_as =
        |user: &str| orders.at(&format!("/orders/{id}/status?status=paid&user_id={user}"));
    assert_eq!(send(client.patch(status_as("u-2"))).await, not_found);

    let (status, own) = send(client.get(as_user("u-1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["order"]["status"], "pending", "u-2 changed nothing");
    let (status, paid) = send(client.patch(status_as("u-1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paid["order"]["status"], "paid");
}
