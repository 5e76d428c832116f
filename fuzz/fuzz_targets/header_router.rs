//! The header router fed an arbitrary caller: the bytes of one connection to the agent
//! port while a header laptop is attached (the case where the router parses). The app is
//! an echo server on loopback, the laptop the far end of a real tunnel session echoing
//! its streams. The router must never panic and must end once the caller has hung up
//! and both callees have answered what they were sent.
#![no_main]

use std::{net::SocketAddr, time::Duration};

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use tether_agent::{
    Routes,
    router::{Upstream, serve_connection},
};
use tether_wire::tunnel::{
    Filter, Heartbeat, HelloMeta, Opener, Role, Session, Side, traffic_target,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// The personal intercept's header, which the fuzzer finds in the seed or by itself.
const HEADER: (&str, &str) = ("x-dev", "alice");

#[derive(Clone)]
struct OneLaptop(Opener);

impl Routes for OneLaptop {
    fn laptop_for(&self, headers: &HeaderMap) -> Option<Opener> {
        headers
            .get_all(HEADER.0)
            .iter()
            .any(|v| v.as_bytes() == HEADER.1.as_bytes())
            .then(|| self.0.clone())
    }
    fn all_traffic(&self) -> Option<Opener> {
        None
    }
    fn any_header_laptop(&self) -> bool {
        true
    }
}

async fn echo_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback binds");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn laptop() -> Option<Opener> {
    let (agent_end, laptop_end) = tokio::io::duplex(256 * 1024);
    let meta = |role, name: &str| HelloMeta {
        role,
        name: name.into(),
        filter: Filter {
            headers: vec![(HEADER.0.into(), HEADER.1.into())],
        },
        ..HelloMeta::default()
    };
    let (agent, laptop) = tokio::join!(
        Session::start(agent_end, Side::Acceptor, meta(Role::Agent, "fuzz-agent"), Heartbeat::default()),
        Session::start(laptop_end, Side::Dialer, meta(Role::Laptop, "fuzz-laptop"), Heartbeat::default()),
    );
    let (agent, mut laptop) = (agent.ok()?, laptop.ok()?);
    let opener = agent.opener();
    tokio::spawn(async move {
        let _agent = agent;
        while let Some(incoming) = laptop.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(incoming.stream);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Some(opener)
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime builds");
    rt.block_on(async move {
        let app = echo_app().await;
        let Some(opener) = laptop().await else {
            return;
        };
        let (caller, agent_side) = tokio::io::duplex(64 * 1024);
        let peer: SocketAddr = ([10, 0, 0, 7], 40000).into();
        let to = Upstream::new(app, traffic_target(9902));
        let router = tokio::spawn(serve_connection(agent_side, peer, to, OneLaptop(opener)));
        let (mut rd, mut wr) = tokio::io::split(caller);
        let input = data.to_vec();
        let talk = async move {
            let _ = wr.write_all(&input).await;
            let _ = wr.shutdown().await;
        };
        let listen = async move {
            let mut sink = vec![0u8; 16 * 1024];
            while rd.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(talk, listen);
        })
        .await;
        router.abort();
        // A panic inside the router's task is a finding, not a cancelled task.
        if let Err(e) = router.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    });
});
