//! The agent in-process: a fake app on 127.0.0.1:0, fake laptops over `tokio::io::duplex`,
//! and raw peers written against the frame codec.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream},
    net::TcpListener,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use super::{Agent, AgentConfig, Routes};
use crate::tunnel::{
    Filter, Frame, Heartbeat, HelloMeta, LAPTOPS_TARGET, LaptopInfo, MAGIC, Role, Session, Side,
    VERSION,
};

const TOKEN: &str = "s3cret-token";

/// An agent expecting `token` (none: refuses every laptop), serving traffic on
/// 127.0.0.1:0 in front of an echo app; returns it and its traffic address.
async fn agent_with_app(token: Option<&str>) -> (Agent, SocketAddr) {
    let app = fake_app().await;
    let mut config = AgentConfig::new(token.unwrap_or(""));
    config.token = token.map(str::to_owned);
    config.service = "payments-svc".into();
    let agent = Agent::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let a = agent.clone();
    tokio::spawn(async move {
        a.serve_traffic(listener, app, CancellationToken::new())
            .await
    });
    (agent, addr)
}

/// Waits until the agent routes to a laptop called `name`.
async fn until_attached(agent: &Agent, name: &str) {
    let mut count = agent.attached_count();
    tokio::time::timeout(
        Duration::from_secs(5),
        count.wait_for(|_| agent.laptops().iter().any(|l| l.name == name)),
    )
    .await
    .expect("the laptop attaches")
    .unwrap();
}

/// Waits until no laptop called `name` is attached.
async fn until_detached(agent: &Agent, name: &str) {
    let mut count = agent.attached_count();
    tokio::time::timeout(
        Duration::from_secs(2),
        count.wait_for(|_| !agent.laptops().iter().any(|l| l.name == name)),
    )
    .await
    .expect("the agent notices a closed tunnel at once")
    .unwrap();
}

/// Answers every request with `tag:` followed by the request body.
async fn serve_echo<IO>(io: IO, tag: &'static str)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
        let body = req.into_body().collect().await?.to_bytes();
        let mut out = tag.as_bytes().to_vec();
        out.push(b':');
        out.extend_from_slice(&body);
        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(out))))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn fake_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve_echo(conn, "app"));
        }
    });
    addr
}

/// A laptop attached to `agent` through a pipe that can be cut or frozen; it answers
/// every stream with `tag:` and the request body.
struct FakeLaptop {
    task: JoinHandle<()>,
    frozen: Arc<AtomicBool>,
    opener: crate::tunnel::Opener,
}

impl FakeLaptop {
    async fn attach(agent: &Agent, filter: Filter) -> FakeLaptop {
        FakeLaptop::try_attach(agent, "test-laptop", filter, TOKEN, "laptop")
            .await
            .unwrap()
    }

    /// Attaches, or returns what the agent said when it refused.
    async fn try_attach(
        agent: &Agent,
        name: &str,
        filter: Filter,
        token: &str,
        tag: &'static str,
    ) -> Result<FakeLaptop, String> {
        let (agent_end, proxy_a) = tokio::io::duplex(256 * 1024);
        let (proxy_b, laptop_end) = tokio::io::duplex(256 * 1024);
        let frozen = Arc::new(AtomicBool::new(false));
        tokio::spawn(relay(proxy_a, proxy_b, frozen.clone()));
        let a = agent.clone();
        tokio::spawn(async move {
            let ended = a.attach(agent_end).await;
            eprintln!("fake laptop detached: {ended:?}");
        });
        let meta = HelloMeta {
            role: Role::Laptop,
            name: name.into(),
            filter,
            token: token.into(),
        };
        let mut session = Session::start(laptop_end, Side::Dialer, meta, Heartbeat::default())
            .await
            .map_err(|e| e.to_string())?;
        let opener = session.opener();
        let task = tokio::spawn(async move {
            while let Some(inc) = session.accept().await {
                tokio::spawn(serve_echo(inc.stream, tag));
            }
        });
        until_attached(agent, name).await;
        Ok(FakeLaptop {
            task,
            frozen,
            opener,
        })
    }

    /// The laptop process dies: its end of the tunnel closes.
    fn vanish(self) {
        self.task.abort();
    }

    /// The network stops carrying anything, but no connection closes.
    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Asks the agent who is attached, as `tether leave` does.
    async fn laptops(&self) -> Vec<LaptopInfo> {
        let mut s = self.opener.open(LAPTOPS_TARGET).unwrap();
        let mut json = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut json))
            .await
            .expect("the agent answers and ends the stream")
            .unwrap();
        serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)))
    }
}

/// Copies both ways until `frozen`, then holds both ends open and silent.
async fn relay(a: DuplexStream, b: DuplexStream, frozen: Arc<AtomicBool>) {
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let f1 = frozen.clone();
    let one = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match ar.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if f1.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if bw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let two = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match br.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if frozen.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if aw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(one, two);
}

async fn post(
    client: &reqwest::Client,
    addr: SocketAddr,
    body: String,
    header: Option<(&str, &str)>,
) -> Result<String, reqwest::Error> {
    let mut req = client.post(format!("http://{addr}/")).body(body);
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    req.send().await?.error_for_status()?.text().await
}

fn dev(who: &str) -> Filter {
    Filter {
        headers: vec![("x-dev".into(), who.into())],
    }
}

/// Sends `bytes` to the agent's control side as a laptop would, and returns every frame
/// the agent wrote until it closed the stream (an error if it did not within 2 s).
async fn raw_attach(agent: &Agent, bytes: Vec<u8>) -> Vec<Frame> {
    let (agent_end, mut peer) = tokio::io::duplex(64 * 1024);
    let a = agent.clone();
    tokio::spawn(async move { a.attach(agent_end).await });
    peer.write_all(&bytes).await.unwrap();
    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(f)) = Frame::read(&mut peer).await {
            frames.push(f);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the agent did not close the stream; it said {frames:?}"));
    frames
}

/// Which laptop answers a request sent through `opener`: its echo tag.
async fn who(opener: Option<crate::tunnel::Opener>) -> String {
    let stream = opener.expect("a laptop takes it").open("").unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/").body(Full::new(Bytes::new())).unwrap();
    let body = send.send_request(req).await.unwrap().into_body();
    let text = body.collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&text)
        .trim_end_matches(':')
        .to_owned()
}

#[tokio::test]
async fn without_a_laptop_traffic_goes_to_the_app() {
    let (_agent, addr) = agent_with_app(Some(TOKEN)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, addr, "hi".into(), None).await.unwrap(),
        "app:hi"
    );
}

#[tokio::test]
async fn a_laptop_with_a_wrong_or_missing_token_is_refused_and_the_app_keeps_the_traffic() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    for token in ["", "s3cret-tokeN", "s3cret-token-and-more"] {
        let refused =
            FakeLaptop::try_attach(&agent, "mallory@x", Filter::default(), token, "laptop")
                .await
                .err()
                .unwrap_or_else(|| panic!("token {token:?} was let in"));
        assert!(
            refused.contains("wrong or missing attach token"),
            "{refused}"
        );
    }
    assert!(agent.laptops().is_empty());
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, addr, "x".into(), None).await.unwrap(),
        "app:x"
    );
    // The right token still gets in (new connections go to it).
    let _laptop = FakeLaptop::attach(&agent, Filter::default()).await;
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, addr, "y".into(), None).await.unwrap(),
        "laptop:y"
    );
}

#[tokio::test]
async fn an_agent_without_a_token_refuses_every_laptop() {
    let (agent, _addr) = agent_with_app(None).await;
    for token in ["", TOKEN] {
        let refused = FakeLaptop::try_attach(&agent, "me@x", Filter::default(), token, "laptop")
            .await
            .err()
            .expect("no laptop may attach to an agent with no token");
        assert!(refused.contains("TETHER_AGENT_TOKEN"), "{refused}");
    }
}

#[tokio::test]
async fn a_hello_that_does_not_parse_is_refused_and_closed_never_all_traffic() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    let mut bad_json = BytesMut::new();
    let payload = [&MAGIC[..], &VERSION.to_be_bytes(), b"{\"token\": 42"].concat();
    bad_json.put_u8(0);
    bad_json.put_u32(0);
    bad_json.put_u32(payload.len() as u32);
    bad_json.put_slice(&payload);
    let not_tether = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    for bytes in [bad_json.to_vec(), not_tether] {
        let frames = raw_attach(&agent, bytes).await;
        match &frames[..] {
            [Frame::GoAway { reason }] => assert!(reason.contains("protocol error"), "{reason}"),
            other => panic!("expected a GoAway alone, got {other:?}"),
        }
    }
    assert!(agent.laptops().is_empty());
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, addr, "x".into(), None).await.unwrap(),
        "app:x"
    );
}

#[tokio::test]
async fn an_attached_laptop_gets_all_traffic_and_the_app_gets_it_back_when_it_vanishes() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    let laptop = FakeLaptop::attach(&agent, Filter::default()).await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for i in 0..20 {
        let body = format!("req {i}");
        let got = post(&fresh, addr, body.clone(), None).await.unwrap();
        assert_eq!(got, format!("laptop:{body}"));
    }
    laptop.vanish();
    until_detached(&agent, "test-laptop").await;
    for i in 0..20 {
        let body = format!("after {i}");
        let got = post(&fresh, addr, body.clone(), None).await.unwrap();
        assert_eq!(got, format!("app:{body}"));
    }
}

#[tokio::test]
async fn a_frozen_laptop_loses_the_traffic_within_a_second() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    let laptop = FakeLaptop::attach(&agent, Filter::default()).await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(
        post(&fresh, addr, "a".into(), None).await.unwrap(),
        "laptop:a"
    );
    laptop.freeze();
    let frozen_at = Instant::now();
    // Requests in flight during the window may fail; the first to reach the app ends it.
    loop {
        if let Ok(got) = post(&fresh, addr, "b".into(), None).await {
            assert_eq!(got, "app:b");
            break;
        }
        assert!(
            frozen_at.elapsed() < Duration::from_secs(3),
            "no fallback to the app"
        );
    }
    let window = frozen_at.elapsed();
    eprintln!("fallback after a frozen laptop: {window:?}");
    // Heartbeat says ≤ 1 s; the per-request timeout adds up to 300 ms of polling slack.
    assert!(window < Duration::from_millis(1400), "{window:?}");
    // After the window nothing fails.
    for i in 0..100 {
        let body = format!("{i}");
        assert_eq!(
            post(&fresh, addr, body.clone(), None).await.unwrap(),
            format!("app:{body}")
        );
    }
}

#[tokio::test]
async fn a_personal_intercept_routes_only_requests_with_the_header() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    let laptop = FakeLaptop::attach(&agent, dev("alice")).await;
    // One keep-alive connection carries both kinds.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for i in 0..30 {
        let body = format!("{i}");
        let (header, want) = match i % 3 {
            0 => (Some(("X-Dev", "alice")), "laptop"),
            1 => (Some(("X-Dev", "bob")), "app"),
            _ => (None, "app"),
        };
        let got = post(&client, addr, body.clone(), header).await.unwrap();
        assert_eq!(got, format!("{want}:{body}"), "request {i}");
    }
    laptop.vanish();
    until_detached(&agent, "test-laptop").await;
    let got = post(&client, addr, "late".into(), Some(("x-dev", "alice")))
        .await
        .unwrap();
    assert_eq!(got, "app:late");
}

#[tokio::test]
async fn alice_and_bob_each_get_only_their_requests_and_one_leaving_keeps_the_other() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    let alice = FakeLaptop::try_attach(&agent, "alice@a", dev("alice"), TOKEN, "alice")
        .await
        .unwrap();
    let _bob = FakeLaptop::try_attach(&agent, "bob@b", dev("bob"), TOKEN, "bob")
        .await
        .unwrap();
    // One keep-alive connection carries requests for both laptops and the app.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for i in 0..30 {
        let body = format!("{i}");
        let (header, want) = match i % 3 {
            0 => (Some(("x-dev", "alice")), "alice"),
            1 => (Some(("x-dev", "bob")), "bob"),
            _ => (None, "app"),
        };
        let got = post(&client, addr, body.clone(), header).await.unwrap();
        assert_eq!(got, format!("{want}:{body}"), "request {i}");
    }
    let names: Vec<String> = alice.laptops().await.into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["alice@a", "bob@b"]);
    alice.vanish();
    until_detached(&agent, "alice@a").await;
    let got = post(&client, addr, "a".into(), Some(("x-dev", "alice")))
        .await
        .unwrap();
    assert_eq!(got, "app:a");
    let got = post(&client, addr, "b".into(), Some(("x-dev", "bob")))
        .await
        .unwrap();
    assert_eq!(got, "bob:b", "bob keeps routing after alice left");
}

#[tokio::test]
async fn a_second_laptop_on_a_held_route_is_refused_naming_the_holder() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    let _first = FakeLaptop::try_attach(&agent, "alice@a", Filter::default(), TOKEN, "alice")
        .await
        .unwrap();
    let refused = FakeLaptop::try_attach(&agent, "bob@b", Filter::default(), TOKEN, "bob")
        .await
        .err()
        .expect("a second all-traffic laptop is refused");
    assert!(
        refused
            .contains("payments-svc is intercepted by alice@a since 0 s; `tether leave` it first"),
        "{refused}"
    );
    let _carol = FakeLaptop::try_attach(&agent, "carol@c", dev("carol"), TOKEN, "carol")
        .await
        .unwrap();
    let filter = Filter {
        headers: vec![("X-DEV".into(), "carol".into())],
    };
    let refused = FakeLaptop::try_attach(&agent, "dave@d", filter, TOKEN, "dave")
        .await
        .err()
        .expect("the same headers are refused");
    assert!(
        refused.contains("payments-svc requests with x-dev=carol are intercepted by carol@c"),
        "{refused}"
    );
    // The first keeps all traffic but carol's requests.
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, addr, "x".into(), None).await.unwrap(),
        "alice:x"
    );
    assert_eq!(
        post(&client, addr, "y".into(), Some(("x-dev", "carol")))
            .await
            .unwrap(),
        "carol:y"
    );
    assert_eq!(agent.laptops().len(), 2);
}

#[tokio::test]
async fn the_laptops_query_lists_every_laptop_and_the_routes_answer_for_them() {
    let (agent, _addr) = agent_with_app(Some(TOKEN)).await;
    let routes = agent.routes();
    assert!(routes.all_traffic().is_none() && !routes.any_header_laptop());
    let all = FakeLaptop::try_attach(&agent, "alice@a", Filter::default(), TOKEN, "alice")
        .await
        .unwrap();
    assert!(!routes.any_header_laptop());
    let both = Filter {
        headers: vec![
            ("x-dev".into(), "bob".into()),
            ("x-team".into(), "a".into()),
        ],
    };
    let bob = FakeLaptop::try_attach(&agent, "bob@b", dev("bob"), TOKEN, "bob")
        .await
        .unwrap();
    let bob_team = FakeLaptop::try_attach(&agent, "bob@team", both, TOKEN, "bobteam")
        .await
        .unwrap();
    let listed = all.laptops().await;
    let summary: Vec<(String, String)> = listed
        .iter()
        .map(|l| (l.name.clone(), l.filter.describe()))
        .collect();
    assert_eq!(
        summary,
        [
            ("alice@a".to_owned(), String::new()),
            ("bob@b".to_owned(), "x-dev=bob".to_owned()),
            ("bob@team".to_owned(), "x-dev=bob, x-team=a".to_owned()),
        ]
    );
    assert!(routes.any_header_laptop());
    assert_eq!(who(routes.all_traffic()).await, "alice");
    let mut h = http::HeaderMap::new();
    assert!(routes.laptop_for(&h).is_none());
    h.insert("x-dev", "bob".parse().unwrap());
    assert_eq!(who(routes.laptop_for(&h)).await, "bob");
    h.insert("x-team", "a".parse().unwrap());
    assert_eq!(
        who(routes.laptop_for(&h)).await,
        "bobteam",
        "the most specific filter wins"
    );
    bob_team.vanish();
    until_detached(&agent, "bob@team").await;
    assert_eq!(who(routes.laptop_for(&h)).await, "bob");
    bob.vanish();
    until_detached(&agent, "bob@b").await;
    assert!(routes.laptop_for(&h).is_none() && !routes.any_header_laptop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_at_fifty_connections_arrive_intact() {
    let (agent, addr) = agent_with_app(Some(TOKEN)).await;
    let _laptop = FakeLaptop::attach(&agent, Filter::default()).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(50)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..50 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                // Every 50th body spans several flow-control windows' worth of frames.
                let size = if i % 50 == 7 {
                    300_000
                } else {
                    64 + (i * 13) % 900
                };
                let body: String = format!("{t}-{i}-").chars().cycle().take(size).collect();
                let got = post(&client, addr, body.clone(), None)
                    .await
                    .unwrap_or_else(|e| panic!("request {t}/{i} failed: {e:?}"));
                assert!(got.len() == body.len() + 7, "request {t}/{i}: wrong length");
                assert!(
                    got == format!("laptop:{body}"),
                    "request {t}/{i}: wrong body"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "10,000 requests through agent and tunnel in {:?}",
        started.elapsed()
    );
}
