//! The `orders` binary: serves [`orders::app`] on `0.0.0.0:$PORT`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::run("orders", |env| {
        orders::Config::from_env(env).map(orders::app)
    })
    .await
}
