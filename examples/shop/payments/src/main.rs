//! The `payments` binary: serves [`payments::app`] on `0.0.0.0:$PORT`.
//! Built with `--features solution`, it is the workshop's fixed service.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::run("payments", |env| {
        payments::Config::from_env(env).map(payments::app)
    })
    .await
}
