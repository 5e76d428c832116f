//! The `products` binary: serves [`products::app`] on `0.0.0.0:$PORT`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::run("products", |env| {
        products::Config::from_env(env).map(products::app)
    })
    .await
}
