//! The workshop, end to end: all five services on loopback ports, wired
//! together as in the cluster, driven only through the gateway the way
//! `examples/shop/walkthrough.sh` drives it.
//!
//! `cargo test -p gateway` shows the flaw (an order paid twice);
//! `cargo test -p gateway --features solution` runs the same flow against
//! the fixed payments service and shows the second payment refused.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_common::{
    JwtSecret,
    testing::{Running, spawn},
};

const SECRET: &str = "workshop-test-secret";

/// The five services; dropping it stops them all.
struct Shop {
    gateway: Running,
    services: Vec<Running>,
}

async fn start() -> Shop {
    let up = |router| async { spawn(router).await.expect("bind a loopback port") };
    let products = up(products::app(products::Config::default())).await;
    let orders = up(orders::app(orders::Config {
        products_url: products.url.clone(),
    }))
    .await;
    let payments = up(payments::app(payments::Config {
        orders_url: orders.url.clone(),
    }))
    .await;
    let mut users_config = users::Config::new(JwtSecret::new(SECRET));
    // Unoptimized test builds take about a second per default-cost hash.
    users_config.password_hashing =
        users::argon2::Params::new(1024, 1, 1, None).expect("valid argon2 params");
    let users = up(users::app(users_config)).await;
    let gateway = up(gateway::app(gateway::Config {
        jwt_secret: JwtSecret::new(SECRET),
        users_url: users.url.clone(),
        products_url: products.url.clone(),
        orders_url: orders.url.clone(),
        payments_url: payments.url.clone(),
    }))
    .await;
    Shop {
        gateway,
        services: vec![users, products, orders, payments],
    }
}

impl Shop {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().request(method, self.gateway.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Signs `username` up and logs in: the user id and a token.
    async fn login(&self, username: &str) -> (String, String) {
        let credentials = json!({"username": username, "password": "correct horse"});
        let (status, user) = self
            .post("/api/v1/users/signup", None, credentials.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        assert_eq!(user["username"], username);
        let (status, body) = self.post("/api/v1/users/login", None, credentials).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            user["id"].as_str().expect("a user id").to_owned(),
            body["token"].as_str().expect("a token").to_owned(),
        )
    }

    /// Orders Loafers and Sunglasses; the order id and its amount.
    async fn order(&self, token: &str) -> (String, Value) {
        let (status, body) = self
            .post(
                "/api/v1/order/create",
                Some(token),
                json!({"product_ids": ["L9ECAV7KIM", "UJZDE8GXD6"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["order"]["id"]
                .as_str()
                .expect("an order id")
                .to_owned(),
            body["amount"].clone(),
        )
    }

    async fn pay(&self, token: &str, order_id: &str, amount: f64) -> (StatusCode, Value) {
        self.post(
            "/api/v1/payments/pay",
            Some(token),
            json!({"order_id": order_id, "amount": amount}),
        )
        .await
    }
}

fn names(products: &Value) -> Vec<&str> {
    products
        .as_array()
        .expect("a list of products")
        .iter()
        .map(|product| product["name"].as_str().expect("a name"))
        .collect()
}

/// Everything up to the first payment, as the walkthrough does it. Returns
/// the token and the paid order's id.
async fn flow_until_paid(shop: &Shop) -> (String, String) {
    let (user_id, token) = shop.login("ada").await;

    let (status, all) = shop.get("/api/v1/products", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().map(Vec::len), Some(10));

    let (status, found) = shop.get("/api/v1/products/search/sunGLASSES", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&found), ["Sunglasses"]);

    let (status, footwear) = shop.get("/api/v1/products/category/footwear", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&footwear), ["Loafers"]);

    assert_eq!(
        shop.get("/api/v1/products/L9ECAV7KIM", None).await,
        (
            StatusCode::OK,
            json!({"id": "L9ECAV7KIM", "name": "Loafers", "category": "footwear", "price": 89.09})
        )
    );

    let (status, created) = shop
        .post(
            "/api/v1/order/create",
            Some(&token),
            // A user_id in the body is ignored: the token says who orders.
            json!({"product_ids": ["L9ECAV7KIM", "UJZDE8GXD6"], "user_id": "mallory"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let order_id = created["order"]["id"]
        .as_str()
        .expect("an order id")
        .to_owned();
    assert_eq!(
        created,
        json!({
            "order": {
                "id": order_id,
                "user_id": user_id,
                "product_ids": ["L9ECAV7KIM", "UJZDE8GXD6"],
                "status": "pending"
            },
            "amount": 109.08
        })
    );

    let (status, payment) = shop.pay(&token, &order_id, 109.08).await;
    assert_eq!(status, StatusCode::CREATED);
    let payment_id = payment["id"].as_str().expect("a payment id").to_owned();
    assert_eq!(
        payment,
        json!({
            "id": payment_id,
            "user_id": user_id,
            "order_id": order_id,
            "amount": 109.08,
            "status": "paid"
        })
    );

    assert_eq!(
        shop.get(
            &format!("/api/v1/payments/status/{payment_id}"),
            Some(&token)
        )
        .await,
        (StatusCode::OK, payment)
    );

    let (status, order) = shop
        .get(&format!("/api/v1/order/{order_id}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["order"]["status"], "paid");
    assert_eq!(order["amount"], 109.08);

    (token, order_id)
}

/// The workshop's flaw: the same order is paid a second time.
#[cfg(not(feature = "solution"))]
#[tokio::test]
async fn workshop_flow_shows_an_order_paid_twice() {
    let shop = start().await;
    let (token, order_id) = flow_until_paid(&shop).await;

    let (status, second) = shop.pay(&token, &order_id, 109.08).await;
    assert_eq!(status, StatusCode::CREATED, "the flaw: paid twice");
    assert_eq!(second["status"], "paid");
    assert_eq!(second["order_id"], order_id.as_str());
}

/// The fix (`--features solution`): the second payment is refused.
#[cfg(feature = "solution")]
#[tokio::test]
async fn workshop_flow_refuses_to_pay_twice() {
    let shop = start().await;
    let (token, order_id) = flow_until_paid(&shop).await;

    assert_eq!(
        shop.pay(&token, &order_id, 109.08).await,
        (StatusCode::FORBIDDEN, json!({"error": "Already Paid"}))
    );
}

#[tokio::test]
async fn errors_pass_through_the_gateway() {
    let shop = start().await;
    let (_, bearer) = shop.login("grace").await;
    let token = Some(bearer.as_str());

    assert_eq!(
        shop.get("/api/v1/products/NOSUCHTHNG", None).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "product NOSUCHTHNG not found"})
        )
    );
    assert_eq!(
        shop.post(
            "/api/v1/order/create",
            token,
            json!({"product_ids": ["L9ECAV7KIM", "NOSUCHTHNG"]})
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "product NOSUCHTHNG not found"})
        )
    );
    assert_eq!(
        shop.get("/api/v1/order/no-such-order", token).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "order no-such-order not found"})
        )
    );
    assert_eq!(
        shop.get("/api/v1/payments/status/no-such-payment", token)
            .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "payment no-such-payment not found"})
        )
    );
    assert_eq!(
        shop.pay(&bearer, "no-such-order", 1.0).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "order no-such-order not found"})
        )
    );

    let (order_id, amount) = shop.order(&bearer).await;
    assert_eq!(amount, 109.08);
    assert_eq!(
        shop.pay(&bearer, &order_id, 100.0).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "amount 100.00 does not match the order's amount 109.08"})
        )
    );

    assert_eq!(
        shop.post(
            "/api/v1/users/signup",
            None,
            json!({"username": "grace", "password": "again"})
        )
        .await,
        (
            StatusCode::CONFLICT,
            json!({"error": "username \"grace\" is already taken"})
        )
    );
    assert_eq!(
        shop.post(
            "/api/v1/users/login",
            None,
            json!({"username": "grace", "password": "wrong"})
        )
        .await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid username or password"})
        )
    );
}

/// The gateway hands on the service's bytes, not a re-encoding of them.
#[tokio::test]
async fn answers_pass_through_byte_for_byte() {
    let shop = start().await;
    let products = &shop.services[1];
    for (direct, through_gateway) in [
        ("/products/UJZDE8GXD6", "/api/v1/products/UJZDE8GXD6"),
        ("/products/NOSUCHTHNG", "/api/v1/products/NOSUCHTHNG"),
    ] {
        let direct = reqwest::get(products.at(direct)).await.expect("request");
        let gateway = reqwest::get(shop.gateway.at(through_gateway))
            .await
            .expect("request");
        assert_eq!(direct.status(), gateway.status());
        assert_eq!(
            gateway.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        assert_eq!(
            direct.text().await.expect("a body"),
            gateway.text().await.expect("a body")
        );
    }
}

/// Payments down behind a running gateway: a 502 that names payments, and
/// orders down behind payments: a 502 that names orders, passed through.
#[tokio::test]
async fn a_service_that_is_down_is_named() {
    let mut shop = start().await;
    let (_, token) = shop.login("linus").await;
    let (order_id, _) = shop.order(&token).await;

    // services: users, products, orders, payments.
    shop.services.remove(2).stop().await;
    let (status, body) = shop.pay(&token, &order_id, 109.08).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let error = body["error"].as_str().expect("an error message");
    assert!(error.starts_with("orders service unreachable: "), "{error}");

    shop.services.remove(2).stop().await;
    let (status, body) = shop.pay(&token, &order_id, 109.08).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let error = body["error"].as_str().expect("an error message");
    assert!(
        error.starts_with("payments service unreachable: "),
        "{error}"
    );
}

/// Through the gateway a user reads and pays only their own orders and
/// reads only their own payments: another user's are a 404, the answer for
/// an order that does not exist, so ids cannot be probed either.
#[tokio::test]
async fn another_users_order_and_payment_are_404() {
    let shop = start().await;
    let (_, ada) = shop.login("ada").await;
    let (_, bob) = shop.login("bob").await;
    let (order_id, _) = shop.order(&ada).await;
    let order_not_found = (
        StatusCode::NOT_FOUND,
        json!({"error": format!("order {order_id} not found")}),
    );
    let order_path = format!("/api/v1/order/{order_id}");

    assert_eq!(shop.get(&order_path, Some(&bob)).await, order_not_found);
    assert_eq!(shop.pay(&bob, &order_id, 109.08).await, order_not_found);

    let (status, payment) = shop.pay(&ada, &order_id, 109.08).await;
    assert_eq!(status, StatusCode::CREATED, "bob's attempt left it payable");
    assert_eq!(
        shop.pay(&bob, &order_id, 109.08).await,
        order_not_found,
        "paid or not, it is not bob's"
    );
    let payment_path = format!(
        "/api/v1/payments/status/{}",
        payment["id"].as_str().expect("a payment id")
    );
    assert_eq!(
        shop.get(&payment_path, Some(&bob)).await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": format!("payment {} not found", payment["id"].as_str().unwrap_or_default())})
        )
    );

    assert_eq!(
        shop.get(&payment_path, Some(&ada)).await,
        (StatusCode::OK, payment)
    );
    let (status, order) = shop.get(&order_path, Some(&ada)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["order"]["status"], "paid");
}
