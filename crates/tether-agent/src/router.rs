//! The header router: serves one caller's connection while laptops are attached, so that a
//! personal (header) intercept takes only the requests carrying its headers and every
//! other caller reaches the app as if no intercept were installed.
//!
//! Data flow: a connection accepted on the agent port → [`serve_connection`] → bytes or
//! requests to the app (over the pod's loopback) or to a laptop (a tunnel stream from the
//! [`Routes`] the agent gives).
//!
//! # What happens to a connection
//! - With no header laptop attached, a laptop in all-traffic mode takes the whole
//!   connection as bytes, or else the app does. Nothing is parsed, nothing waits.
//! - With header laptops attached, HTTP requests none of them claims go to an all-traffic
//!   laptop if there is one, else to the app; a connection that is not HTTP goes to the app.
//! - Otherwise the router opens the app's connection at once (as the caller's would have
//!   been) and waits for the first bytes from either side, without consuming them:
//!   - the HTTP/2 preface (prior knowledge, which gRPC uses): served as HTTP/2; each
//!     request goes to the laptop its headers match, over a new HTTP/2 connection through
//!     the tunnel, or else to the app over one HTTP/2 connection per caller connection
//!     (the one opened at accept). Trailers pass both ways, so gRPC status arrives.
//!   - an HTTP/1.x request line: served as HTTP/1.1 with keep-alive, each request routed
//!     the same way (the laptop gets a tunnel stream per request). A request to upgrade
//!     (WebSocket, `Upgrade: h2c`, `CONNECT`) goes where its headers say; after the
//!     `101` both sides are bridged as raw bytes, so the whole rest of that connection
//!     belongs to the side that took the upgrade.
//!   - anything else (a TLS ClientHello the app terminates, a database protocol), or the
//!     app speaking first (SMTP, MySQL banners): the connection is passed through to the
//!     app as bytes, untouched, the bytes read so far replayed first.
//!
//! # What the app and the laptop see
//! Requests to the laptop get the caller's address appended to `X-Forwarded-For` and
//! `Forwarded: for=…`. Requests to the app are left exactly as the caller sent them: the
//! app's view does not change when someone starts a personal intercept. HTTP/1 header
//! names keep their case; HTTP/2 to the app is one connection of the agent's per caller
//! connection, carrying the caller's requests unchanged. A caller whose request reaches
//! the laptop leaves an idle connection at the app. Raw TCP passed through carries no
//! caller address: the app sees the agent's loopback address, as for every connection
//! the agent forwards.
//!
//! The laptop is asked in the protocol the caller used (HTTP/2 for HTTP/2 callers): it
//! stands in for the app, so it speaks what the app speaks. A request that should go to
//! the laptop while the laptop is leaving goes to the app.

use std::{fmt, net::SocketAddr};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{
    Request, Response,
    body::Incoming,
    client::conn::{http1, http2},
    upgrade::OnUpgrade,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::Mutex,
};

use crate::{
    routes::Routes,
    tunnel::{Opener, TunnelError},
};

/// What a client sends first on an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longer methods are not HTTP as anyone uses it: the bytes pass through.
const MAX_METHOD: usize = 32;
/// A longer request target is passed through rather than buffered (hyper, behind most
/// apps, refuses heads above a few hundred KiB anyway; the app then decides).
const MAX_TARGET: usize = 16 * 1024;

/// Why a request could not be carried; the caller sees a closed connection (app: as if
/// the app had closed it) or a `502` naming the cause (laptop).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("cannot reach the app at {addr}")]
    AppConnect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open a tunnel stream to the laptop")]
    Tunnel(#[source] TunnelError),
    #[error("HTTP to the {to} failed")]
    Http {
        to: Callee,
        #[source]
        source: hyper::Error,
    },
}

/// Who takes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callee {
    App,
    Laptop,
}

impl fmt::Display for Callee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Callee::App => "app",
            Callee::Laptop => "laptop",
        })
    }
}

/// What the first bytes of a connection say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
    /// Anything else: passed through as bytes.
    Opaque,
}

/// Classifies a connection by its first bytes; `None` while they could still be either.
fn classify(first: &[u8]) -> Option<Protocol> {
    if first.is_empty() {
        return None;
    }
    let n = first.len().min(PREFACE.len());
    if first[..n] == PREFACE[..n] {
        return (first.len() >= PREFACE.len()).then_some(Protocol::Http2);
    }
    request_line(first)
}

/// `METHOD SP target SP HTTP/1.d CRLF` (a bare LF accepted, as HTTP/1 parsers do).
fn request_line(first: &[u8]) -> Option<Protocol> {
    const OPAQUE: Option<Protocol> = Some(Protocol::Opaque);
    const VERSION: &[u8] = b"HTTP/1.";
    let method = first.iter().take_while(|b| is_tchar(**b)).count();
    if method > MAX_METHOD {
        return OPAQUE;
    }
    match first.get(method) {
        None => return None,
        Some(b' ') if method > 0 => {}
        Some(_) => return OPAQUE,
    }
    let rest = &first[method + 1..];
    let target = rest
        .iter()
        .take_while(|b| **b > b' ' && **b != 0x7f)
        .count();
    if target > MAX_TARGET {
        return OPAQUE;
    }
    match rest.get(target) {
        None => return None,
        Some(b' ') if target > 0 => {}
        Some(_) => return OPAQUE,
    }
    let version = &rest[target + 1..];
    let n = version.len().min(VERSION.len());
    if version[..n] != VERSION[..n] {
        return OPAQUE;
    }
    match version.get(VERSION.len()..) {
        None | Some([]) => None,
        Some([d, ..]) if !d.is_ascii_digit() => OPAQUE,
        Some([_]) | Some([_, b'\r']) => None,
        Some([_, b'\n', ..]) | Some([_, b'\r', b'\n', ..]) => Some(Protocol::Http1),
        Some(_) => OPAQUE,
    }
}

/// RFC 9110's token characters, which make up a method.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Where one agent port's connections go when no laptop takes them, and what a laptop's
/// streams for them are called. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The app container's port behind this agent port, over the pod's loopback.
    pub app: SocketAddr,
    /// The Open target of this port's streams to a laptop
    /// ([`traffic_target`](crate::tunnel::traffic_target)).
    pub stream: std::sync::Arc<str>,
}

impl Upstream {
    pub fn new(app: SocketAddr, stream: String) -> Upstream {
        Upstream {
            app,
            stream: stream.into(),
        }
    }
}

/// Serves one caller's connection until it ends: see the module doc for where its bytes
/// and requests go. `peer` is the caller's address.
pub async fn serve_connection<IO, R>(mut conn: IO, peer: SocketAddr, to: Upstream, routes: R)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    R: Routes,
{
    let app = to.app;
    if !routes.any_header_laptop()
        && let Some(mut laptop) = routes.all_traffic().and_then(|o| o.open(&to.stream).ok())
    {
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut laptop).await;
        return;
    }
    // Connected before anything is read, as the caller's connection would have been: a
    // server that speaks first is heard at once, and nothing waits on a timer.
    let app_conn = match TcpStream::connect(app).await {
        Ok(tcp) => {
            let _ = tcp.set_nodelay(true);
            Some(tcp)
        }
        Err(e) => {
            // A laptop may still take this caller's requests.
            tracing::debug!("cannot reach the app at {app}: {e}");
            None
        }
    };
    if !routes.any_header_laptop() {
        if let Some(mut app_conn) = app_conn {
            let _ = tokio::io::copy_bidirectional(&mut conn, &mut app_conn).await;
        }
        return;
    }
    let mut first = BytesMut::with_capacity(4096);
    let mut app_conn = app_conn;
    let protocol = loop {
        if let Some(p) = classify(&first) {
            break p;
        }
        let mut app_first = [0u8; 4096];
        tokio::select! {
            read = conn.read_buf(&mut first) => match read {
                Ok(0) => break Protocol::Opaque,
                Ok(_) => {}
                Err(_) => return,
            },
            read = async { app_conn.as_mut()?.read(&mut app_first).await.ok() }, if app_conn.is_some() => {
                // The app spoke first (or closed): it is not HTTP, pass it through.
                let Some(app_conn) = app_conn.take() else { return };
                if let Some(n) = read.filter(|n| *n > 0) {
                    if conn.write_all(&app_first[..n]).await.is_err() {
                        return;
                    }
                }
                pass_through(conn, &first, app_conn).await;
                return;
            }
        }
    };
    let conn = Replay::new(first.freeze(), conn);
    match protocol {
        Protocol::Http1 => serve_http1(conn, Ctx::new(routes, peer, &to, app_conn)).await,
        Protocol::Http2 => serve_http2(conn, Ctx::new(routes, peer, &to, app_conn)).await,
        Protocol::Opaque => {
            let (first, conn) = conn.into_parts();
            match AppLink::<()>::new(app, app_conn).stream().await {
                Ok(app_conn) => pass_through(conn, &first, app_conn).await,
                Err(e) => tracing::debug!("{e}"),
            }
        }
    }
}

/// Replays `first` to the app, then copies both ways until both sides are done.
async fn pass_through<IO>(mut conn: IO, first: &[u8], mut app: TcpStream)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    if app.write_all(first).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut app).await;
}

type Body = BoxBody<Bytes, hyper::Error>;

/// The context every request of one caller connection is routed with.
struct Ctx<R, S> {
    routes: R,
    peer: SocketAddr,
    /// The Open target of streams to a laptop.
    stream: std::sync::Arc<str>,
    app: Mutex<AppLink<S>>,
}

impl<R: Routes, S> Ctx<R, S> {
    fn new(routes: R, peer: SocketAddr, to: &Upstream, app: Option<TcpStream>) -> Ctx<R, S> {
        Ctx {
            routes,
            peer,
            stream: to.stream.clone(),
            app: Mutex::new(AppLink::new(to.app, app)),
        }
    }

    /// The tunnel stream to the laptop that takes a request with these headers, if any:
    /// the header laptop they match, else an all-traffic laptop standing in for the app.
    fn laptop(&self, headers: &HeaderMap) -> Option<tokio::io::DuplexStream> {
        let opener: Opener = self
            .routes
            .laptop_for(headers)
            .or_else(|| self.routes.all_traffic())?;
        match opener.open(&self.stream) {
            Ok(stream) => Some(stream),
            Err(e) => {
                // The laptop is leaving: the app takes the request.
                tracing::debug!("{}", RouterError::Tunnel(e));
                None
            }
        }
    }
}

async fn serve_http1<IO, R>(conn: Replay<IO>, ctx: Ctx<R, H1>)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    R: Routes,
{
    let ctx = std::sync::Arc::new(ctx);
    let service = hyper::service::service_fn(move |req| route_http1(req, ctx.clone()));
    let served = hyper::server::conn::http1::Builder::new()
        // The app sees the caller's header names as written, and no Date it did not send.
        .preserve_header_case(true)
        .auto_date_header(false)
        // A caller that shuts its write side while waiting is still answered.
        .half_close(true)
        .serve_connection(TokioIo::new(conn), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!("an HTTP/1 caller's connection ended: {e}");
    }
}

type H1 = http1::SendRequest<Incoming>;
type H2 = http2::SendRequest<Incoming>;

async fn route_http1<R: Routes>(
    mut req: Request<Incoming>,
    ctx: std::sync::Arc<Ctx<R, H1>>,
) -> Result<Response<Body>, RouterError> {
    let upgrade = asks_to_switch(&req).map(|asks| (asks, hyper::upgrade::on(&mut req)));
    if let Some(stream) = ctx.laptop(req.headers()) {
        add_forwarded(req.headers_mut(), ctx.peer);
        let sent = async {
            let (mut sender, conn) = h1_client()
                .handshake(TokioIo::new(stream))
                .await
                .map_err(laptop_http)?;
            tokio::spawn(conn.with_upgrades());
            sender.send_request(req).await.map_err(laptop_http)
        };
        return Ok(match sent.await {
            Ok(resp) => respond(resp, upgrade),
            Err(e) => bad_gateway(&e),
        });
    }
    // Held until the answer's head arrives: HTTP/1 carries one request at a time anyway.
    let mut app = ctx.app.lock().await;
    let sender = app.http1().await?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|source| RouterError::Http {
            to: Callee::App,
            source,
        })?;
    Ok(respond(resp, upgrade))
}

fn laptop_http(source: hyper::Error) -> RouterError {
    RouterError::Http {
        to: Callee::Laptop,
        source,
    }
}

fn h1_client() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.preserve_header_case(true);
    builder
}

/// How a request asks to leave HTTP/1 once answered, so the answer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asks {
    /// `Upgrade: websocket`, `Upgrade: h2c`…: switched by a `101`.
    Upgrade,
    /// `CONNECT`: switched by any `2xx`.
    Connect,
}

fn asks_to_switch<B>(req: &Request<B>) -> Option<Asks> {
    if req.method() == Method::CONNECT {
        Some(Asks::Connect)
    } else {
        req.headers()
            .contains_key(header::UPGRADE)
            .then_some(Asks::Upgrade)
    }
}

/// Passes the callee's answer on; when it switches protocols, bridges the caller's
/// connection and the callee's as raw bytes once hyper hands both over.
fn respond(mut resp: Response<Incoming>, caller: Option<(Asks, OnUpgrade)>) -> Response<Body> {
    let switched = |asks| match asks {
        Asks::Upgrade => resp.status() == StatusCode::SWITCHING_PROTOCOLS,
        Asks::Connect => resp.status().is_success(),
    };
    if let Some((_, caller)) = caller.filter(|(asks, _)| switched(*asks)) {
        let callee = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(caller), Ok(callee)) = tokio::join!(caller, callee) else {
                return;
            };
            let (mut caller, mut callee) = (TokioIo::new(caller), TokioIo::new(callee));
            let _ = tokio::io::copy_bidirectional(&mut caller, &mut callee).await;
        });
    }
    resp.map(|body| body.boxed())
}

async fn serve_http2<IO, R>(conn: Replay<IO>, ctx: Ctx<R, H2>)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    R: Routes,
{
    let ctx = std::sync::Arc::new(ctx);
    let service = hyper::service::service_fn(move |req| route_http2(req, ctx.clone()));
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .auto_date_header(false)
        .serve_connection(TokioIo::new(conn), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("an HTTP/2 caller's connection ended: {e}");
    }
}

async fn route_http2<R: Routes>(
    mut req: Request<Incoming>,
    ctx: std::sync::Arc<Ctx<R, H2>>,
) -> Result<Response<Body>, RouterError> {
    if let Some(stream) = ctx.laptop(req.headers()) {
        add_forwarded(req.headers_mut(), ctx.peer);
        let sent = async {
            let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(laptop_http)?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(laptop_http)
        };
        return Ok(match sent.await {
            Ok(resp) => resp.map(|body| body.boxed()),
            Err(e) => bad_gateway(&e),
        });
    }
    // A clone of the one connection's sender: the lock is not held while the app answers.
    let mut sender = ctx.app.lock().await.http2().await?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|source| RouterError::Http {
            to: Callee::App,
            source,
        })?;
    Ok(resp.map(|body| body.boxed()))
}

/// A `502` whose body says why, for the developer at the laptop.
fn bad_gateway(e: &RouterError) -> Response<Body> {
    let mut text = format!("tether-agent: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text.push('\n');
    let mut resp = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}

/// Appends the caller to `X-Forwarded-For` and `Forwarded`, after what it already sent.
fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_canonical();
    append_to_list(
        headers,
        HeaderName::from_static("x-forwarded-for"),
        &ip.to_string(),
    );
    let node = match ip {
        std::net::IpAddr::V4(v4) => format!("for={v4}"),
        std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    append_to_list(headers, header::FORWARDED, &node);
}

/// Joins the header's values and `item` into one comma-separated value.
fn append_to_list(headers: &mut HeaderMap, name: HeaderName, item: &str) {
    let mut joined = Vec::new();
    for value in headers.get_all(&name) {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(item.as_bytes());
    // Valid values joined by ", " stay valid; should that ever fail, add a value instead.
    match HeaderValue::from_bytes(&joined) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => {
            if let Ok(value) = HeaderValue::from_str(item) {
                headers.append(name, value);
            }
        }
    }
}

/// The app's side of one caller connection: the connection opened when the caller's
/// arrived, then the HTTP client over it, made when the first request for the app comes.
struct AppLink<S> {
    addr: SocketAddr,
    opened: Option<TcpStream>,
    sender: Option<S>,
}

impl<S> AppLink<S> {
    fn new(addr: SocketAddr, opened: Option<TcpStream>) -> AppLink<S> {
        AppLink {
            addr,
            opened,
            sender: None,
        }
    }

    /// The connection opened at accept if the app has not closed it meanwhile (a caller
    /// may talk to the laptop for long), else a new one.
    async fn stream(&mut self) -> Result<TcpStream, RouterError> {
        if let Some(tcp) = self.opened.take() {
            let mut probe = [0u8; 1];
            if matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            {
                return Ok(tcp);
            }
        }
        let tcp =
            TcpStream::connect(self.addr)
                .await
                .map_err(|source| RouterError::AppConnect {
                    addr: self.addr,
                    source,
                })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

impl AppLink<H1> {
    /// The app's HTTP/1 connection, ready for the next request.
    async fn http1(&mut self) -> Result<&mut H1, RouterError> {
        let reuse = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        let sender = match self.sender.take() {
            Some(s) if reuse => s,
            _ => {
                let tcp = self.stream().await?;
                let (sender, conn) =
                    h1_client()
                        .handshake(TokioIo::new(tcp))
                        .await
                        .map_err(|source| RouterError::Http {
                            to: Callee::App,
                            source,
                        })?;
                tokio::spawn(conn.with_upgrades());
                sender
            }
        };
        Ok(self.sender.insert(sender))
    }
}

impl AppLink<H2> {
    /// A handle on the app's HTTP/2 connection.
    async fn http2(&mut self) -> Result<H2, RouterError> {
        let sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => {
                let tcp = self.stream().await?;
                let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .map_err(|source| RouterError::Http {
                        to: Callee::App,
                        source,
                    })?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(self.sender.insert(sender).clone())
    }
}

/// A connection whose first bytes, already read to classify it, are read again first.
struct Replay<IO> {
    first: Bytes,
    io: IO,
}

impl<IO> Replay<IO> {
    fn new(first: Bytes, io: IO) -> Replay<IO> {
        Replay { first, io }
    }

    fn into_parts(self) -> (Bytes, IO) {
        (self.first, self.io)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Replay<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Replay<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
