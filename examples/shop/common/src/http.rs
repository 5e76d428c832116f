//! Serving a shop router: common layers, graceful shutdown, and `main`.
//!
//! [`finish`] is applied by every service's `router()`, so in-process tests
//! see exactly what the binary serves. [`run`] is the whole body of each
//! `main.rs`: logs to stdout, reads the environment, binds `0.0.0.0:$PORT`
//! and [`serve`]s until SIGTERM or SIGINT, letting requests in flight finish.

use std::{
    error::Error,
    future::Future,
    io::{self, IsTerminal},
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
    time::Instant,
};

use axum::{
    Router,
    extract::Request,
    http::{Method, Uri},
    middleware::{self, Next},
    response::Response,
};
use tokio::net::TcpListener;
use tracing::{debug, error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::{ApiError, Env};

/// Adds what every service's router needs: a JSON 404 for unknown paths, a
/// JSON 405 for a known path with the wrong method, and one access-log line
/// per request (`GET /products 200 1ms`; health probes only at debug level,
/// so the kubelet does not drown the requests the developer is watching).
pub fn finish(router: Router) -> Router {
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(access_log))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis();
    if path == "/healthz" {
        debug!(target: "access", "{method} {path} {status} {ms}ms");
    } else {
        info!(target: "access", "{method} {path} {status} {ms}ms");
    }
    response
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the requests in flight.
pub async fn serve<F>(listener: TcpListener, router: Router, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends
/// to stop a pod). If a handler cannot be installed, that signal is ignored
/// and the process can still be stopped by the other one.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    info!("shutting down: finishing the requests in flight");
}

/// Everything a service's `main` does. `build` turns the environment into
/// the service's router; a configuration error exits with status 2, a
/// failure to bind or serve with 1, a clean shutdown with 0.
pub async fn run<F, E>(service: &'static str, build: F) -> ExitCode
where
    F: FnOnce(&Env) -> Result<Router, E>,
    E: Error,
{
    init_tracing();
    let env = Env::from_process();
    let port = match env.port() {
        Ok(port) => port,
        Err(e) => {
            error!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    let router = match build(&env) {
        Ok(router) => router,
        Err(e) => {
            error!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            error!("{service}: cannot listen on {addr}: {e} (set PORT to a free port)");
            return ExitCode::FAILURE;
        }
    };
    info!("{service} listening on http://{addr}");
    match serve(listener, router, shutdown_signal()).await {
        Ok(()) => {
            info!("{service} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{service}: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stdout, `info` and up unless `RUST_LOG` says otherwise; colours
/// only on a terminal (kubectl logs shows escape codes verbatim).
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stdout)
        .with_ansi(io::stdout().is_terminal())
        .init();
}
