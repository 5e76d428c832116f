//! The gateway on its own: tokens, bad bodies, and services that are down.
//! Every peer URL points at a closed port, so any request that gets past
//! the gateway's own checks ends in a 502 naming the service it needed.
//! The pass-through of the services' answers is `workshop_flow.rs`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_common::{
    JwtSecret,
    jwt::{self, Claims},
    testing::{Running, closed_url, spawn},
};

const SECRET: &str = "gateway-test-secret";

async fn start() -> Running {
    let down = closed_url().await.expect("a free port");
    let config = gateway::Config {
        jwt_secret: JwtSecret::new(SECRET),
        users_url: down.clone(),
        products_url: down.clone(),
        orders_url: down.clone(),
        payments_url: down,
    };
    spawn(gateway::app(config))
        .await
        .expect("bind a loopback port")
}

fn token(secret: &str, exp: u64) -> String {
    let claims = Claims {
        sub: "u-1".into(),
        username: "ada".into(),
        exp,
    };
    jwt::sign(&claims, &JwtSecret::new(secret))
}

fn valid_token() -> String {
    token(SECRET, jwt::now() + 600)
}

async fn call(
    gateway: &Running,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, gateway.at(path));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

/// The guarded routes, each with a body it would accept.
const GUARDED: [(&str, &str, Option<&str>); 4] = [
    (
        "POST",
        "/api/v1/order/create",
        Some(r#"{"product_ids":["L9ECAV7KIM"]}"#),
    ),
    ("GET", "/api/v1/order/o-1", None),
    (
        "POST",
        "/api/v1/payments/pay",
        Some(r#"{"order_id":"o-1","amount":1.5}"#),
    ),
    ("GET", "/api/v1/payments/status/p-1", None),
];

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a valid method")
}

#[tokio::test]
async fn healthz() {
    let gateway = start().await;
    assert_eq!(
        call(&gateway, Method::GET, "/healthz", None, None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn missing_token_is_401() {
    let gateway = start().await;
    for (verb, path, body) in GUARDED {
        let (status, body) = call(&gateway, method(verb), path, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{verb} {path}");
        assert_eq!(
            body,
            json!({"error": "missing token: send the header Authorization: Bearer <token> (from /api/v1/users/login)"})
        );
    }
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let gateway = start().await;
    let forged = token("another-secret", jwt::now() + 600);
    let expired = token(SECRET, jwt::now() - 1);
    let cases = [
        ("not-a-jwt", "token is malformed"),
        (forged.as_str(), "token signature is invalid"),
        (expired.as_str(), "token has expired"),
    ];
    for (verb, path, body) in GUARDED {
        for (token, message) in cases {
            assert_eq!(
                call(&gateway, method(verb), path, Some(token), body).await,
                (StatusCode::UNAUTHORIZED, json!({ "error": message })),
                "{verb} {path} with {message}"
            );
        }
    }
}

#[tokio::test]
async fn other_schemes_are_401() {
    let gateway = start().await;
    let response = reqwest::Client::new()
        .get(gateway.at("/api/v1/order/o-1"))
        .header("authorization", format!("Basic {}", valid_token()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(
        body,
        json!({"error": "the Authorization header must be: Bearer <token>"})
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let gateway = start().await;
    let token = valid_token();
    for (path, token) in [
        ("/api/v1/users/signup", None),
        ("/api/v1/users/login", None),
        ("/api/v1/order/create", Some(token.as_str())),
        ("/api/v1/payments/pay", Some(token.as_str())),
    ] {
        let (status, body) = call(&gateway, Method::POST, path, token, Some("{oops")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        let error = body["error"].as_str().expect("an error message");
        assert!(
            error.starts_with("Failed to parse the request body as JSON"),
            "{error}"
        );
    }
    let (status, body) = call(
        &gateway,
        Method::POST,
        "/api/v1/payments/pay",
        Some(&token),
        Some(r#"{"order_id":"o-1"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing field `amount`")),
        "{body}"
    );
}

#[tokio::test]
async fn services_down_are_502_naming_the_service() {
    let gateway = start().await;
    let token = valid_token();
    let cases = [
        ("GET", "/api/v1/products", None, None, "products"),
        ("GET", "/api/v1/products/L9ECAV7KIM", None, None, "products"),
        (
            "GET",
            "/api/v1/products/search/glass",
            None,
            None,
            "products",
        ),
        (
            "GET",
            "/api/v1/products/category/kitchen",
            None,
            None,
            "products",
        ),
        (
            "POST",
            "/api/v1/users/signup",
            None,
            Some(r#"{"username":"ada","password":"x"}"#),
            "users",
        ),
        (
            "POST",
            "/api/v1/users/login",
            None,
            Some(r#"{"username":"ada","password":"x"}"#),
            "users",
        ),
        (
            "POST",
            GUARDED[0].1,
            Some(token.as_str()),
            GUARDED[0].2,
            "orders",
        ),
        ("GET", GUARDED[1].1, Some(token.as_str()), None, "orders"),
        (
            "POST",
            GUARDED[2].1,
            Some(token.as_str()),
            GUARDED[2].2,
            "payments",
        ),
        ("GET", GUARDED[3].1, Some(token.as_str()), None, "payments"),
    ];
    for (verb, path, token, body, service) in cases {
        let (status, body) = call(&gateway, method(verb), path, token, body).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{verb} {path}");
        let error = body["error"].as_str().expect("an error message");
        assert!(
            error.starts_with(&format!("{service} service unreachable: ")),
            "{verb} {path}: {error}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let gateway = start().await;
    assert_eq!(
        call(&gateway, Method::GET, "/api/v2/products", None, None).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "no route for GET /api/v2/products"})
        )
    );
}
