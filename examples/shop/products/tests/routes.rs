//! The products routes over HTTP, as the orders service and the gateway
//! call them.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shop_common::testing::{Running, spawn};

async fn start() -> Running {
    spawn(products::app(products::Config::default()))
        .await
        .expect("bind a loopback port")
}

async fn get(service: &Running, path: &str) -> (StatusCode, Value) {
    let response = reqwest::get(service.at(path)).await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn names(products: &Value) -> Vec<&str> {
    products
        .as_array()
        .expect("an array")
        .iter()
        .map(|p| p["name"].as_str().expect("a name"))
        .collect()
}

#[tokio::test]
async fn healthz() {
    let service = start().await;
    assert_eq!(
        get(&service, "/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn lists_ten_products() {
    let service = start().await;
    let (status, body) = get(&service, "/products").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(10));
}

#[tokio::test]
async fn gets_one_by_id() {
    let service = start().await;
    assert_eq!(
        get(&service, "/products/L9ECAV7KIM").await,
        (
            StatusCode::OK,
            json!({"id": "L9ECAV7KIM", "name": "Loafers", "category": "footwear", "price": 89.09})
        )
    );
}

#[tokio::test]
async fn unknown_id_is_404() {
    let service = start().await;
    assert_eq!(
        get(&service, "/products/NOSUCHTHNG").await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "product NOSUCHTHNG not found"})
        )
    );
}

#[tokio::test]
async fn search_ignores_case() {
    let service = start().await;
    let (status, body) = get(&service, "/products/search/GLASS").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        names(&body),
        ["Reading Glasses", "Bamboo Glass Jar", "Sunglasses"]
    );
    let (status, body) = get(&service, "/products/search/nothing-like-this").await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn by_category_ignores_case() {
    let service = start().await;
    let (status, body) = get(&service, "/products/category/Kitchen").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        names(&body),
        ["Salt & Pepper Shakers", "Bamboo Glass Jar", "Mug"]
    );
}

#[tokio::test]
async fn unknown_route_and_method_are_json() {
    let service = start().await;
    assert_eq!(
        get(&service, "/nope").await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "no route for GET /nope"})
        )
    );
    let response = reqwest::Client::new()
        .post(service.at("/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(
        body,
        json!({"error": "method POST is not allowed on /products"})
    );
}
