//! The router in-process: a fake app on 127.0.0.1:0, the router on another, and a laptop
//! played through a real tunnel [`Session`] pair over `tokio::io::duplex`. Every callee
//! answers with its own tag, so each test sees who served it.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream},
    net::{TcpListener, TcpStream},
};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use super::{Upstream, serve_connection};
use crate::{
    routes::Routes,
    tunnel::{
        Filter, Heartbeat, HelloMeta, Opener, Role, Session, Side, traffic_port, traffic_target,
    },
};

/// Long enough for a loaded machine, short enough that a hang fails the test.
const LIMIT: Duration = Duration::from_secs(5);
/// The personal intercept's header.
const HEADER: (&str, &str) = ("x-dev", "alice");

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing within {LIMIT:?}"),
    }
}

/// Routes requests carrying [`HEADER`] to the one laptop, or every connection to it.
#[derive(Clone)]
struct FakeRoutes {
    laptop: Opener,
    all_traffic: bool,
}

impl Routes for FakeRoutes {
    fn laptop_for(&self, headers: &HeaderMap) -> Option<Opener> {
        let wanted = headers
            .get_all(HEADER.0)
            .iter()
            .any(|v| v.as_bytes() == HEADER.1.as_bytes());
        (wanted && !self.all_traffic).then(|| self.laptop.clone())
    }
    fn all_traffic(&self) -> Option<Opener> {
        self.all_traffic.then(|| self.laptop.clone())
    }
    fn any_header_laptop(&self) -> bool {
        !self.all_traffic
    }
}

/// What a fake callee speaks.
#[derive(Clone, Copy)]
enum Speaks {
    Http1,
    /// HTTP/2 prior knowledge; every response ends with gRPC-style trailers.
    Http2,
    /// WebSocket: each text message comes back as `tag:message`.
    WebSocket,
    /// Raw bytes echoed back.
    Echo,
    /// Writes a banner on connect, then echoes.
    Banner,
    /// HTTP/1, but closes a connection that brings no request within 100 ms (as servers
    /// with a header-read timeout do).
    Http1Impatient,
    /// Answers any HTTP/1 request with `101` to h2c, then serves HTTP/2 as [`Speaks::Http2`].
    H2cUpgrade,
}

/// Answers `tag` plus what it saw: the caller's forwarding headers and the body.
async fn answer(
    req: Request<Incoming>,
    tag: &'static str,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let seen = |name: &str| {
        let values: Vec<_> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        values.join(" | ")
    };
    let head = format!(
        "{tag} {} xff=[{}] fwd=[{}] body=",
        req.uri().path(),
        seen("x-forwarded-for"),
        seen("forwarded")
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    Ok(Response::new(Full::new(Bytes::from(out))))
}

async fn serve<IO>(io: IO, tag: &'static str, speaks: Speaks)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match speaks {
        Speaks::Http1 => serve_http1(io, tag).await,
        Speaks::Http1Impatient => {
            let mut io = io;
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(Duration::from_millis(100), io.read(&mut first));
            let Ok(Ok(1)) = peeked.await else {
                return;
            };
            serve_http1(super::Replay::new(Bytes::copy_from_slice(&first), io), tag).await;
        }
        Speaks::Http2 => {
            let service = hyper::service::service_fn(move |req| async move {
                let resp = answer(req, tag).await?;
                let (parts, body) = resp.into_parts();
                let data = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                trailers.insert("grpc-message", HeaderValue::from_static(tag));
                let frames = vec![
                    Ok::<_, Infallible>(Frame::data(data)),
                    Ok(Frame::trailers(trailers)),
                ];
                Ok::<_, Infallible>(Response::from_parts(
                    parts,
                    StreamBody::new(futures::stream::iter(frames)),
                ))
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service)
                .await;
        }
        Speaks::WebSocket => {
            let Ok(mut ws) = tokio_tungstenite::accept_async(io).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(text) = msg {
                    let reply = format!("{tag}:{}", text.as_str());
                    if ws.send(Message::text(reply)).await.is_err() {
                        return;
                    }
                }
            }
        }
        Speaks::Echo => {
            let (mut rd, mut wr) = tokio::io::split(io);
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
            let _ = wr.shutdown().await;
        }
        Speaks::H2cUpgrade => {
            // The router opens a connection to the app for every caller; one whose
            // caller went to the laptop closes without a request.
            let mut io = io;
            let Some(head) = try_read_until(&mut io, b"\r\n\r\n").await else {
                return;
            };
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            if !head.contains("upgrade: h2c\r\n") {
                return;
            }
            let switch =
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
            if io.write_all(switch.as_bytes()).await.is_ok() {
                Box::pin(serve(io, tag, Speaks::Http2)).await;
            }
        }
        Speaks::Banner => {
            let (mut rd, mut wr) = tokio::io::split(io);
            if wr
                .write_all(format!("220 {tag} ready\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
        }
    }
}

async fn serve_http1<IO>(io: IO, tag: &'static str)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| answer(req, tag));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

/// A fake app speaking `speaks` on 127.0.0.1:0.
async fn app(speaks: Speaks) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn, "app", speaks));
        }
    });
    addr
}

/// A laptop attached through a real session pair: the agent side's opener, and the task
/// that holds both sessions (aborting it is the laptop going away).
async fn laptop(speaks: Speaks) -> (Opener, tokio::task::JoinHandle<()>) {
    let (agent_end, laptop_end) = tokio::io::duplex(256 * 1024);
    let agent_meta = HelloMeta {
        role: Role::Agent,
        name: "test-agent".into(),
        ..HelloMeta::default()
    };
    let laptop_meta = HelloMeta {
        role: Role::Laptop,
        name: "test-laptop".into(),
        filter: Filter {
            headers: vec![(HEADER.0.into(), HEADER.1.into())],
        },
        ..HelloMeta::default()
    };
    let (agent, laptop) = tokio::join!(
        Session::start(agent_end, Side::Acceptor, agent_meta, Heartbeat::default()),
        Session::start(laptop_end, Side::Dialer, laptop_meta, Heartbeat::default()),
    );
    let (agent, mut laptop) = (agent.unwrap(), laptop.unwrap());
    let opener = agent.opener();
    let task = tokio::spawn(async move {
        let _agent = agent;
        while let Some(inc) = laptop.accept().await {
            // A laptop of several ports picks the local one by the port the stream names.
            if traffic_port(&inc.target).is_some() {
                tokio::spawn(serve::<DuplexStream>(inc.stream, "laptop", speaks));
            }
        }
    });
    (opener, task)
}

/// The router on 127.0.0.1:0 in front of `app`, with a header laptop speaking
/// `laptop_speaks`.
async fn router(app: SocketAddr, laptop_speaks: Speaks) -> SocketAddr {
    let (laptop, _) = laptop(laptop_speaks).await;
    let routes = FakeRoutes {
        laptop,
        all_traffic: false,
    };
    router_with(app, routes).await
}

async fn router_with(app: SocketAddr, routes: FakeRoutes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, peer)) = listener.accept().await {
            let to = Upstream::new(app, traffic_target(addr.port()));
            tokio::spawn(serve_connection(conn, peer, to, routes.clone()));
        }
    });
    addr
}

fn with_header(mut req: Request<Full<Bytes>>, header: bool) -> Request<Full<Bytes>> {
    if header {
        req.headers_mut()
            .insert(HEADER.0, HeaderValue::from_static(HEADER.1));
    }
    req
}

fn get(uri: &str, header: bool) -> Request<Full<Bytes>> {
    with_header(Request::get(uri).body(Full::default()).unwrap(), header)
}

/// A keep-alive HTTP/1 client: each request waits until the previous one is done.
struct H1Client(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl H1Client {
    async fn send(&mut self, req: Request<Full<Bytes>>) -> hyper::Result<Response<Incoming>> {
        self.0.ready().await?;
        self.0.send_request(req).await
    }
}

async fn h1_client(addr: SocketAddr) -> H1Client {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    H1Client(sender)
}

async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = within(
        "the HTTP/2 handshake",
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

/// The body and the trailers of a response.
async fn read_all(resp: Response<Incoming>) -> (String, Option<HeaderMap>) {
    let collected = within("the response body", resp.into_body().collect())
        .await
        .unwrap();
    let trailers = collected.trailers().cloned();
    let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    (body, trailers)
}

#[tokio::test]
async fn http1_keep_alive_routes_each_request_by_header() {
    let addr = router(app(Speaks::Http1).await, Speaks::Http1).await;
    let mut client = h1_client(addr).await;
    let mut served = Vec::new();
    for header in [false, true, false, true] {
        let resp = within("a response", client.send(get("/x", header)))
            .await
            .unwrap();
        let (body, _) = read_all(resp).await;
        served.push(body.split(' ').next().unwrap_or_default().to_owned());
    }
    assert_eq!(served, ["app", "laptop", "app", "laptop"]);
}

#[tokio::test]
async fn laptop_sees_the_callers_address_and_the_app_sees_the_request_unchanged() {
    let addr = router(app(Speaks::Http1).await, Speaks::Http1).await;
    let mut client = h1_client(addr).await;
    let mut req = get("/who", true);
    req.headers_mut()
        .insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
    let (body, _) = read_all(within("laptop", client.send(req)).await.unwrap()).await;
    assert_eq!(
        body,
        "laptop /who xff=[203.0.113.7, 127.0.0.1] fwd=[for=127.0.0.1] body="
    );
    let (body, _) = read_all(
        within("app", client.send(get("/who", false)))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body, "app /who xff=[] fwd=[] body=");
}

/// Reads from `conn` until `end` has arrived; returns everything read.
async fn read_until<IO: AsyncRead + Unpin>(conn: &mut IO, end: &[u8]) -> Vec<u8> {
    match try_read_until(conn, end).await {
        Some(seen) => seen,
        None => panic!("closed before {:?} arrived", String::from_utf8_lossy(end)),
    }
}

/// [`read_until`], or `None` if the connection ends first. Fake servers use it: a
/// panic there would stall the test's one runtime thread while it prints a backtrace,
/// long enough for the tunnel's heartbeat to declare the laptop gone.
async fn try_read_until<IO: AsyncRead + Unpin>(conn: &mut IO, end: &[u8]) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(end.len()).any(|w| w == end) {
        let n = tokio::time::timeout(LIMIT, conn.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Some(seen)
}

#[tokio::test]
async fn app_receives_an_http1_request_head_byte_for_byte() {
    // The app records the head it received and answers it back as the body.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(head) = try_read_until(&mut conn, b"\r\n\r\n").await else {
                    return;
                };
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", head.len());
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.write_all(&head).await;
            });
        }
    });
    let addr = router(app_addr, Speaks::Http1).await;
    let head =
        "GET /Path?q=1 HTTP/1.1\r\nHost: shop.local\r\nX-Mixed-Case: Value\r\nAccept: */*\r\n\r\n";
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until(&mut conn, b"Accept: */*\r\n\r\n").await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.ends_with(&format!("\r\n\r\n{head}")),
        "the app saw another head: {answer:?}"
    );
}

/// Sends three text messages over a WebSocket through the router; returns the replies.
async fn websocket_replies(addr: SocketAddr, header: bool) -> Vec<String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/chat").into_client_request().unwrap();
    if header {
        req.headers_mut()
            .insert(HEADER.0, HeaderValue::from_static(HEADER.1));
    }
    let (mut ws, resp) = within("the 101", tokio_tungstenite::client_async(req, tcp))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let mut replies = Vec::new();
    for text in ["one", "two", "three"] {
        within("a send", ws.send(Message::text(text)))
            .await
            .unwrap();
        match within("a reply after the 101", ws.next()).await {
            Some(Ok(Message::Text(t))) => replies.push(t.as_str().to_owned()),
            other => panic!("no reply after the 101: {other:?}"),
        }
    }
    replies
}

#[tokio::test]
async fn websocket_without_the_header_echoes_through_the_app_after_the_101() {
    let addr = router(app(Speaks::WebSocket).await, Speaks::WebSocket).await;
    assert_eq!(
        websocket_replies(addr, false).await,
        ["app:one", "app:two", "app:three"]
    );
}

#[tokio::test]
async fn websocket_with_the_header_echoes_through_the_laptop() {
    let addr = router(app(Speaks::WebSocket).await, Speaks::WebSocket).await;
    assert_eq!(
        websocket_replies(addr, true).await,
        ["laptop:one", "laptop:two", "laptop:three"]
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_routes_each_request_by_header_on_one_connection() {
    let addr = router(app(Speaks::Http2).await, Speaks::Http2).await;
    let mut client = h2_client(addr).await;
    // Concurrent streams on one connection, alternating callers.
    let requests = (0..6).map(|i| {
        let mut client = client.clone();
        async move {
            let resp = client.send_request(get(&format!("http://svc/{i}"), i % 2 == 1));
            let (body, _) = read_all(within("a response", resp).await.unwrap()).await;
            body
        }
    });
    let bodies = futures::future::join_all(requests).await;
    assert_eq!(
        bodies,
        [
            "app /0 xff=[] fwd=[] body=",
            "laptop /1 xff=[127.0.0.1] fwd=[for=127.0.0.1] body=",
            "app /2 xff=[] fwd=[] body=",
            "laptop /3 xff=[127.0.0.1] fwd=[for=127.0.0.1] body=",
            "app /4 xff=[] fwd=[] body=",
            "laptop /5 xff=[127.0.0.1] fwd=[for=127.0.0.1] body=",
        ]
    );
    // And the connection still works afterwards.
    let resp = within(
        "a response",
        client.send_request(get("http://svc/again", false)),
    )
    .await
    .unwrap();
    assert_eq!(read_all(resp).await.0, "app /again xff=[] fwd=[] body=");
}

fn grpc_call(header: bool) -> Request<Full<Bytes>> {
    let req = Request::post("http://svc/shop.Products/List")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap();
    with_header(req, header)
}

#[tokio::test]
async fn grpc_like_calls_get_their_trailers_from_app_and_laptop() {
    let addr = router(app(Speaks::Http2).await, Speaks::Http2).await;
    let mut client = h2_client(addr).await;
    for (header, tag) in [(false, "app"), (true, "laptop")] {
        let resp = within("a gRPC response", client.send_request(grpc_call(header)))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let (body, trailers) = read_all(resp).await;
        assert!(
            body.starts_with(&format!("{tag} /shop.Products/List")),
            "{body}"
        );
        assert!(body.ends_with("body=\0\0\0\0\x02hi"), "{body:?}");
        let trailers = trailers.unwrap_or_else(|| panic!("no trailers from the {tag}"));
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert_eq!(trailers.get("grpc-message").unwrap(), tag);
    }
}

#[tokio::test]
async fn tls_and_other_bytes_pass_through_to_the_app_byte_exact() {
    let addr = router(app(Speaks::Echo).await, Speaks::Echo).await;
    // A TLS 1.2 record header and ClientHello start, then bytes of every value.
    let mut sent = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    sent.extend((0..200_000u32).map(|i| (i * 7 % 251) as u8));
    let conn = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = conn.into_split();
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            wr.write_all(&sent).await.unwrap();
            wr.shutdown().await.unwrap();
        })
    };
    let mut echoed = Vec::new();
    within("the echo to end", rd.read_to_end(&mut echoed))
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the echo differs from what was sent");
}

#[tokio::test]
async fn a_server_that_speaks_first_is_heard() {
    let addr = router(app(Speaks::Banner).await, Speaks::Banner).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let banner = read_until(&mut conn, b"\r\n").await;
    assert_eq!(banner, b"220 app ready\r\n");
    conn.write_all(b"EHLO laptop\r\n").await.unwrap();
    assert_eq!(read_until(&mut conn, b"\r\n").await, b"EHLO laptop\r\n");
}

#[tokio::test]
async fn text_that_looks_like_a_command_but_not_http_passes_through() {
    // A Redis inline command starts like an HTTP request line but has no version.
    let addr = router(app(Speaks::Echo).await, Speaks::Echo).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET key\r\n").await.unwrap();
    assert_eq!(read_until(&mut conn, b"\r\n").await, b"GET key\r\n");
}

#[test]
fn first_bytes_are_told_apart_as_soon_as_they_can_be() {
    use super::{Protocol::*, classify};
    let cases: &[(&[u8], Option<super::Protocol>)] = &[
        (b"", None),
        (b"G", None),
        (b"GET /a", None),
        (b"GET /a HTTP/1.", None),
        (b"GET /a HTTP/1.1\r", None),
        (b"GET /a HTTP/1.1\r\n", Some(Http1)),
        (b"GET /a HTTP/1.0\n", Some(Http1)),
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n", Some(Http1)),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r", None),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0", Some(Http2)),
        // The preface's first line but not the preface: not HTTP/1 either.
        (b"PRI * HTTP/2.0\r\n\r\nXX", Some(Opaque)),
        (b"\x16\x03\x01\x02\x00", Some(Opaque)),
        (b"*1\r\n$4\r\nPING\r\n", Some(Opaque)),
        (b"GET key\r\n", Some(Opaque)),
        (b"GET /a HTTP/2\r\n", Some(Opaque)),
        (b"GET  /a HTTP/1.1\r\n", Some(Opaque)),
        (b"SSH-2.0-OpenSSH_9.6\r\n", Some(Opaque)),
    ];
    for (first, want) in cases {
        assert_eq!(
            classify(first),
            *want,
            "{:?}",
            String::from_utf8_lossy(first)
        );
    }
    let long_method = [b'A'; 40];
    assert_eq!(classify(&long_method), Some(Opaque));
    let mut long_target = b"GET /".to_vec();
    long_target.resize(20 * 1024, b'a');
    assert_eq!(classify(&long_target), Some(Opaque));
}

/// An HTTP/1 request upgraded to h2c, then one HTTP/2 request on the switched connection.
async fn h2c_upgrade(addr: SocketAddr, header: bool) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let dev = if header { "x-dev: alice\r\n" } else { "" };
    let head = format!(
        "GET / HTTP/1.1\r\nHost: svc\r\n{dev}Connection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // Byte by byte: the server's HTTP/2 SETTINGS may follow the 101 at once.
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let byte = within("the 101", conn.read_u8()).await.unwrap();
        answer.push(byte);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let (mut sender, h2) = within(
        "the HTTP/2 handshake after the 101",
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn)),
    )
    .await
    .unwrap();
    tokio::spawn(h2);
    let resp = within(
        "a response over h2c",
        sender.send_request(get("http://svc/h2c", false)),
    )
    .await
    .unwrap();
    read_all(resp).await.0
}

#[tokio::test]
async fn h2c_upgrade_goes_where_its_first_request_says_and_carries_http2_after_the_101() {
    let addr = router(app(Speaks::H2cUpgrade).await, Speaks::H2cUpgrade).await;
    assert_eq!(
        h2c_upgrade(addr, false).await,
        "app /h2c xff=[] fwd=[] body="
    );
    // The laptop's side of the switch: HTTP/2 after it carries no forwarding headers.
    assert_eq!(
        h2c_upgrade(addr, true).await,
        "laptop /h2c xff=[] fwd=[] body="
    );
}

#[tokio::test]
async fn a_request_for_a_laptop_that_has_left_goes_to_the_app() {
    let (laptop, sessions) = laptop(Speaks::Http1).await;
    let routes = FakeRoutes {
        laptop,
        all_traffic: false,
    };
    let addr = router_with(app(Speaks::Http1).await, routes).await;
    let mut client = h1_client(addr).await;
    let resp = within("laptop", client.send(get("/a", true)))
        .await
        .unwrap();
    assert!(read_all(resp).await.0.starts_with("laptop /a"));
    sessions.abort();
    // The session notices its end asynchronously; the next request must not fail either way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resp = within("app", client.send(get("/b", true))).await.unwrap();
    assert_eq!(read_all(resp).await.0, "app /b xff=[] fwd=[] body=");
}

#[tokio::test]
async fn an_all_traffic_laptop_takes_whole_connections_as_bytes() {
    let (laptop, _sessions) = laptop(Speaks::Banner).await;
    let routes = FakeRoutes {
        laptop,
        all_traffic: true,
    };
    let addr = router_with(app(Speaks::Banner).await, routes).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        read_until(&mut conn, b"\r\n").await,
        b"220 laptop ready\r\n"
    );
}

#[tokio::test]
async fn the_app_is_reached_after_it_closed_the_connection_opened_at_accept() {
    // While the caller talks to the laptop, the app gives up on its idle connection.
    let addr = router(app(Speaks::Http1Impatient).await, Speaks::Http1).await;
    let mut client = h1_client(addr).await;
    let resp = within("laptop", client.send(get("/a", true)))
        .await
        .unwrap();
    assert!(read_all(resp).await.0.starts_with("laptop /a"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = within("app", client.send(get("/b", false))).await.unwrap();
    assert_eq!(read_all(resp).await.0, "app /b xff=[] fwd=[] body=");
}
