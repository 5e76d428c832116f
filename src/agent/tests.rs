//! The agent in-process: a fake app on 127.0.0.1:0, a fake laptop over `tokio::io::duplex`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    task::JoinHandle,
};

use super::*;

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

/// An agent serving traffic on 127.0.0.1:0; returns it and its traffic address.
async fn agent_with_app() -> (Agent, SocketAddr) {
    let app = fake_app().await;
    let agent = Agent::new(app, Heartbeat::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let a = agent.clone();
    tokio::spawn(async move { a.serve_traffic(listener, CancellationToken::new()).await });
    (agent, addr)
}

/// A laptop attached to `agent` through a pipe that can be cut or frozen.
struct FakeLaptop {
    task: JoinHandle<()>,
    frozen: Arc<AtomicBool>,
}

impl FakeLaptop {
    async fn attach(agent: &Agent, filter: Filter) -> FakeLaptop {
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
            name: "test-laptop".into(),
            filter,
            ..HelloMeta::default()
        };
        let mut session = Session::start(laptop_end, Side::Dialer, meta, Heartbeat::default())
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            while let Some(inc) = session.accept().await {
                tokio::spawn(serve_echo(inc.stream, "laptop"));
            }
        });
        let mut attached = agent.attached();
        tokio::time::timeout(Duration::from_secs(5), attached.wait_for(|a| *a))
            .await
            .unwrap()
            .unwrap();
        FakeLaptop { task, frozen }
    }

    /// The laptop process dies: its end of the tunnel closes.
    fn vanish(self) {
        self.task.abort();
    }

    /// The network stops carrying anything, but no connection closes.
    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
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

#[tokio::test]
async fn without_a_laptop_traffic_goes_to_the_app() {
    let (_agent, addr) = agent_with_app().await;
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, addr, "hi".into(), None).await.unwrap(),
        "app:hi"
    );
}

#[tokio::test]
async fn an_attached_laptop_gets_all_traffic_and_the_app_gets_it_back_when_it_vanishes() {
    let (agent, addr) = agent_with_app().await;
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
    let mut attached = agent.attached();
    tokio::time::timeout(Duration::from_secs(1), attached.wait_for(|a| !*a))
        .await
        .expect("the agent notices a closed tunnel at once")
        .unwrap();
    for i in 0..20 {
        let body = format!("after {i}");
        let got = post(&fresh, addr, body.clone(), None).await.unwrap();
        assert_eq!(got, format!("app:{body}"));
    }
}

#[tokio::test]
async fn a_frozen_laptop_loses_the_traffic_within_a_second() {
    let (agent, addr) = agent_with_app().await;
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
    let (agent, addr) = agent_with_app().await;
    let filter = Filter {
        headers: vec![("x-dev".into(), "alice".into())],
    };
    let laptop = FakeLaptop::attach(&agent, filter).await;
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
    let mut attached = agent.attached();
    attached.wait_for(|a| !*a).await.unwrap();
    let got = post(&client, addr, "late".into(), Some(("x-dev", "alice")))
        .await
        .unwrap();
    assert_eq!(got, "app:late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_at_fifty_connections_arrive_intact() {
    let (agent, addr) = agent_with_app().await;
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

#[test]
fn agent_args_parse_as_the_sidecar_gives_them() {
    let args: Vec<String> = [
        "--app-port",
        "8080",
        "--listen",
        "9900",
        "--control",
        "9901",
    ]
    .map(String::from)
    .to_vec();
    let a = AgentArgs::try_parse_from(&args).unwrap();
    assert_eq!((a.app_port, a.listen, a.control), (8080, 9900, 9901));
    assert!(AgentArgs::try_parse_from(["--listen", "1"]).is_err());
}
