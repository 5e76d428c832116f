//! The users routes over HTTP: sign-up, login, and the tokens they issue.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shop_common::{
    JwtSecret,
    jwt::{self, JwtError},
    testing::{Running, spawn},
};

const SECRET: &str = "users-test-secret";

/// The users service with the real defaults except a cheap argon2 cost:
/// unoptimized test builds take about a second per default-cost hash.
async fn start() -> Running {
    let mut config = users::Config::new(JwtSecret::new(SECRET));
    config.password_hashing =
        users::argon2::Params::new(1024, 1, 1, None).expect("valid argon2 params");
    spawn(users::app(config))
        .await
        .expect("bind a loopback port")
}

async fn post(service: &Running, path: &str, body: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(service.at(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

const ADA: &str = r#"{"username":"ada","password":"lovelace"}"#;

#[tokio::test]
async fn healthz() {
    let service = start().await;
    let body: Value = reqwest::get(service.at("/healthz"))
        .await
        .expect("request")
        .json()
        .await
        .expect("a JSON body");
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn hello_answers_the_greeting() {
    let service = start().await;
    let body = reqwest::get(service.at("/hello"))
        .await
        .expect("request")
        .text()
        .await
        .expect("a text body");
    assert_eq!(body, "hello from users\n");
}

#[tokio::test]
async fn signup_then_login_gives_a_token_for_that_user() {
    let service = start().await;
    let (status, user) = post(&service, "/signup", ADA).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(user["username"], "ada");
    let id = user["id"].as_str().expect("an id");

    let (status, body) = post(&service, "/login", ADA).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().expect("a token");
    let claims = jwt::verify(token, &JwtSecret::new(SECRET), jwt::now()).expect("a valid token");
    assert_eq!(claims.sub, id);
    assert_eq!(claims.username, "ada");
    let ttl = claims.exp - jwt::now();
    assert!((8 * 3600 - 60..=8 * 3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        jwt::verify(token, &JwtSecret::new("another"), jwt::now()),
        Err(JwtError::BadSignature)
    );
}

#[tokio::test]
async fn duplicate_username_is_409() {
    let service = start().await;
    assert_eq!(post(&service, "/signup", ADA).await.0, StatusCode::CREATED);
    assert_eq!(
        post(
            &service,
            "/signup",
            r#"{"username":"ada","password":"other"}"#
        )
        .await,
        (
            StatusCode::CONFLICT,
            json!({"error": "username \"ada\" is already taken"})
        )
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_the_same_401() {
    let service = start().await;
    assert_eq!(post(&service, "/signup", ADA).await.0, StatusCode::CREATED);
    let refused = (
        StatusCode::UNAUTHORIZED,
        json!({"error": "invalid username or password"}),
    );
    assert_eq!(
        post(
            &service,
            "/login",
            r#"{"username":"ada","password":"nope"}"#
        )
        .await,
        refused
    );
    assert_eq!(
        post(
            &service,
            "/login",
            r#"{"username":"bob","password":"lovelace"}"#
        )
        .await,
        refused
    );
}

#[tokio::test]
async fn empty_fields_are_400() {
    let service = start().await;
    assert_eq!(
        post(&service, "/signup", r#"{"username":"  ","password":"x"}"#).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "username must not be empty"})
        )
    );
    assert_eq!(
        post(&service, "/signup", r#"{"username":"ada","password":""}"#).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "password must not be empty"})
        )
    );
}

#[tokio::test]
async fn malformed_json_is_a_json_400() {
    let service = start().await;
    for path in ["/signup", "/login"] {
        let (status, body) = post(&service, path, r#"{"username": "ada""#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        let error = body["error"].as_str().expect("an error message");
        assert!(
            error.starts_with("Failed to parse the request body as JSON"),
            "{error}"
        );

        let (status, body) = post(&service, path, r#"{"username": "ada"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        let error = body["error"].as_str().expect("an error message");
        assert!(error.contains("missing field `password`"), "{error}");
    }
}

/// The default cost is what runs in the cluster; check it works at all.
#[tokio::test]
async fn default_cost_hashes_and_verifies() {
    let service = spawn(users::app(users::Config::new(JwtSecret::new(SECRET))))
        .await
        .expect("bind a loopback port");
    assert_eq!(post(&service, "/signup", ADA).await.0, StatusCode::CREATED);
    assert_eq!(post(&service, "/login", ADA).await.0, StatusCode::OK);
}

/// The median of `samples`, in seconds.
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A login for a name that does not exist costs a password check too, so
/// its answer time does not tell which names exist. Timed over interleaved
/// runs with a cost that makes one check take a clear while; the bound is
/// generous (a loaded machine slows both alike), while a login that skips
/// the check for unknown names answers in a few milliseconds instead.
#[tokio::test]
async fn unknown_users_take_as_long_to_refuse_as_wrong_passwords() {
    let mut config = users::Config::new(JwtSecret::new(SECRET));
    config.password_hashing =
        users::argon2::Params::new(4096, 2, 1, None).expect("valid argon2 params");
    let service = spawn(users::app(config))
        .await
        .expect("bind a loopback port");
    assert_eq!(post(&service, "/signup", ADA).await.0, StatusCode::CREATED);

    let timed = |body: &'static str| {
        let service = &service;
        async move {
            let started = std::time::Instant::now();
            let (status, _) = post(service, "/login", body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            started.elapsed().as_secs_f64()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        known.push(timed(r#"{"username":"ada","password":"nope"}"#).await);
        unknown.push(timed(r#"{"username":"nobody","password":"nope"}"#).await);
    }
    let (known, unknown) = (median(known), median(unknown));
    assert!(
        unknown > known * 0.5,
        "an unknown user was refused in {unknown:.4} s, a wrong password in {known:.4} s"
    );
}
