//! The `gateway` binary: serves [`gateway::app`] on `0.0.0.0:$PORT`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shop_common::run("gateway", |env| {
        gateway::Config::from_env(env).map(gateway::app)
    })
    .await
}
