//! The `users` binary: serves [`users::app`] on `0.0.0.0:$PORT`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::run("users", |env| users::Config::from_env(env).map(users::app)).await
}
