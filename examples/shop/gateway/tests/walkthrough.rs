//! `examples/shop/walkthrough.sh`, the workshop's script, against the five
//! services on loopback ports: it runs through for an honest caller, and
//! when the login answer has no token it says what the gateway answered.

use std::process::{Command, Output};

use shop_common::{
    JwtSecret,
    testing::{Running, closed_url, spawn},
};

const SECRET: &str = "walkthrough-test-secret";

/// The shop behind a gateway; `users_down` points the gateway's users URL
/// at a closed port. Returns the gateway first; the rest must stay alive.
async fn start(users_down: bool) -> (Running, Vec<Running>) {
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
    users_config.password_hashing =
        users::argon2::Params::new(1024, 1, 1, None).expect("valid argon2 params");
    let users = up(users::app(users_config)).await;
    let users_url = if users_down {
        closed_url().await.expect("a free port")
    } else {
        users.url.clone()
    };
    let gateway = up(gateway::app(gateway::Config {
        jwt_secret: JwtSecret::new(SECRET),
        users_url,
        products_url: products.url.clone(),
        orders_url: orders.url.clone(),
        payments_url: payments.url.clone(),
    }))
    .await;
    (gateway, vec![users, products, orders, payments])
}

/// Runs the script against `gateway` on a blocking thread (the services
/// answer on this test's runtime meanwhile).
async fn walkthrough(gateway: &Running) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../walkthrough.sh");
    let url = gateway.url.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .arg(url)
            .output()
            .expect("bash runs the walkthrough")
    })
    .await
    .expect("the walkthrough thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_runs_through_the_shop() {
    let (gateway, _services) = start(false).await;
    let out = walkthrough(&gateway).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = if cfg!(feature = "solution") {
        "The second payment was refused: the fix is live."
    } else {
        "The order was paid TWICE: that is the bug this workshop fixes."
    };
    assert!(stdout.contains(expected), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_answer_without_a_token_is_shown() {
    let (gateway, _services) = start(true).await;
    let out = walkthrough(&gateway).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "no token in the login answer: the gateway answered HTTP 502 \
             {\"error\":\"users service unreachable: "
        ),
        "{stderr}"
    );
}
