//! The control socket's server: HTTP/1.1 over a unix socket, one task per connection.
//! It reads the engine's state snapshot, the log history and its live lines, and sends
//! resource names on the session's trigger channel; it keeps no state of its own.

use std::{convert::Infallible, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{body::Frame, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    net::UnixListener,
    sync::{broadcast, mpsc, watch},
};
use tokio_util::sync::CancellationToken;

use super::protocol::{ErrorBody, LogRecord, Status};
use crate::{
    engine::State,
    logs_history::{Entry, History},
};

/// Lines sent before following when the client does not ask for a number.
const DEFAULT_TAIL: usize = 1000;
/// More than this is refused, so one request cannot read the whole history into memory.
const MAX_TAIL: usize = 100_000;
/// How long a trigger waits for room in the session's queue.
const TRIGGER_WAIT: Duration = Duration::from_secs(2);

type Body = BoxBody<Bytes, Infallible>;

/// What the server reads and where it sends triggers.
pub struct Control {
    pub state: watch::Receiver<State>,
    pub history: Arc<History>,
    pub trigger_tx: mpsc::Sender<String>,
    /// The project folder, reported by `/status`.
    pub root: PathBuf,
    /// The profile the run uses, reported by `/status`.
    pub profile: Option<super::protocol::ProfileStatus>,
}

/// Whether the peer runs as the user running `up`: only they may read its logs or
/// trigger deploys, whatever the socket's file mode says.
fn same_user(stream: &tokio::net::UnixStream) -> bool {
    stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == rustix::process::geteuid().as_raw())
}

/// Serves `listener` until `shutdown`; follow streams end then too.
pub async fn serve(listener: UnixListener, control: Arc<Control>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if same_user(&stream) => stream,
                Ok(_) => {
                    tracing::warn!("control socket: refused a peer of another user");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let control = control.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(|req| handle(req, control.clone(), shutdown.clone()));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("control socket: connection ended: {e}");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

async fn handle<B>(
    req: Request<B>,
    control: Arc<Control>,
    shutdown: CancellationToken,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    Ok(match (path.as_str(), path.strip_prefix("/trigger/")) {
        ("/status", _) if method == Method::GET => status(&control),
        ("/logs", _) if method == Method::GET => logs(&control, &query, shutdown).await,
        (_, Some(resource)) if method == Method::POST => trigger(&control, resource).await,
        ("/status" | "/logs", _) | (_, Some(_)) => {
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} {path}"))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such path {path}: try /status, /logs or /trigger/RESOURCE"),
        ),
    })
}

fn status(control: &Control) -> Response<Body> {
    let status = {
        let state = control.state.borrow();
        Status {
            profile: control.profile.clone(),
            ..Status::from_state(
                &state,
                std::process::id(),
                control.root.display().to_string(),
            )
        }
    };
    json(StatusCode::OK, &status)
}

async fn trigger(control: &Control, resource: &str) -> Response<Body> {
    if let Some(r) = unknown(control, Some(resource)) {
        return r;
    }
    let send = control.trigger_tx.send(resource.to_owned());
    match tokio::time::timeout(TRIGGER_WAIT, send).await {
        Ok(Ok(())) => Response::builder()
            .status(StatusCode::ACCEPTED)
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(format!("{{\"queued\":{}}}\n", quoted(resource))))
            .unwrap_or_else(|_| plain_500()),
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the session is stopping"),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session's queue is full (a long round is running); try again when it ends",
        ),
    }
}

async fn logs(control: &Control, query: &str, shutdown: CancellationToken) -> Response<Body> {
    let mut resource = None;
    let mut follow = false;
    let mut tail = DEFAULT_TAIL;
    for (k, v) in query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
    {
        match k {
            "resource" if !v.is_empty() => resource = Some(v.to_owned()),
            "resource" => {}
            "follow" => follow = matches!(v, "1" | "true" | ""),
            "tail" => match v.parse::<usize>() {
                Ok(n) if n <= MAX_TAIL => tail = n,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("tail must be a number up to {MAX_TAIL}, not `{v}`"),
                    );
                }
            },
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter `{other}`"),
                );
            }
        }
    }
    if let Some(r) = unknown(control, resource.as_deref()) {
        return r;
    }
    let history = control.history.clone();
    let wanted = resource.clone();
    let read =
        tokio::task::spawn_blocking(move || history.tail_and_follow(wanted.as_deref(), tail)).await;
    let (tail_entries, live_rx) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let first = futures::stream::iter(
        (!tail_entries.is_empty())
            .then(|| Ok::<_, Infallible>(Frame::data(ndjson(tail_entries.iter())))),
    );
    let body = if follow {
        let live = follow_stream(live_rx, resource, shutdown);
        BodyExt::boxed(StreamBody::new(first.chain(live)))
    } else {
        BodyExt::boxed(StreamBody::new(first))
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(body)
        .unwrap_or_else(|_| plain_500())
}

/// New lines of `resource` (or all), a frame per batch, until shutdown or the history is gone.
fn follow_stream(
    live_rx: broadcast::Receiver<Arc<Entry>>,
    resource: Option<String>,
    shutdown: CancellationToken,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures::stream::unfold(
        (live_rx, resource, shutdown),
        |(mut rx, resource, shutdown)| async move {
            use broadcast::error::{RecvError, TryRecvError};
            let wanted = |e: &Entry| resource.as_deref().is_none_or(|r| r == e.line.resource);
            loop {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    r = rx.recv() => r,
                };
                let mut batch: Vec<Arc<Entry>> = Vec::new();
                let mut skipped = 0;
                match first {
                    Ok(e) => batch.push(e),
                    Err(RecvError::Lagged(n)) => skipped += n,
                    Err(RecvError::Closed) => return None,
                }
                // Whatever else is queued goes out in the same frame.
                loop {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(TryRecvError::Lagged(n)) => skipped += n,
                        Err(_) => break,
                    }
                }
                let mut out = Vec::new();
                if skipped > 0 {
                    out.extend(line_of(&LogRecord {
                        at: String::new(),
                        resource: "tether".into(),
                        pod: String::new(),
                        container: String::new(),
                        text: format!("({skipped} lines skipped: this reader fell behind)"),
                    }));
                }
                for e in batch.iter().filter(|e| wanted(e)) {
                    out.extend(line_of(&LogRecord::from(e.as_ref())));
                }
                if !out.is_empty() {
                    return Some((Ok(Frame::data(Bytes::from(out))), (rx, resource, shutdown)));
                }
            }
        },
    )
}

/// The 404 response when `resource` is given and not a resource of this `up`.
fn unknown(control: &Control, resource: Option<&str>) -> Option<Response<Body>> {
    let resource = resource?;
    let state = control.state.borrow();
    if state.resources.contains_key(resource) {
        return None;
    }
    let names: Vec<&str> = state.resources.keys().map(String::as_str).collect();
    Some(error(
        StatusCode::NOT_FOUND,
        format!(
            "no resource `{resource}` in this `tether up` (known: {})",
            names.join(", ")
        ),
    ))
}

fn ndjson<'a>(entries: impl Iterator<Item = &'a Entry>) -> Bytes {
    let mut out = Vec::new();
    for e in entries {
        out.extend(line_of(&LogRecord::from(e)));
    }
    Bytes::from(out)
}

fn line_of(record: &LogRecord) -> Vec<u8> {
    let mut v = serde_json::to_vec(record).unwrap_or_default();
    v.push(b'\n');
    v
}

fn json<T: serde::Serialize>(code: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            Response::builder()
                .status(code)
                .header(header::CONTENT_TYPE, "application/json")
                .body(full(body))
                .unwrap_or_else(|_| plain_500())
        }
        Err(_) => plain_500(),
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(
        code,
        &ErrorBody {
            error: message.into(),
        },
    )
}

fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(body.into()))
}

fn plain_500() -> Response<Body> {
    let mut r = Response::new(full("internal error\n"));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}
