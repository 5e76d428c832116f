//! Sessions in-process: two real sessions over `tokio::io::duplex`, or one real session and
//! a raw peer written against the frame codec.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tunnel::{MAX_PAYLOAD, Role};

use super::*;

async fn pair() -> (Session, Session) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let laptop = HelloMeta {
        role: Role::Laptop,
        ..HelloMeta::default()
    };
    let agent = HelloMeta {
        role: Role::Agent,
        ..HelloMeta::default()
    };
    let (l, r) = tokio::join!(
        Session::start(a, Side::Dialer, laptop, Heartbeat::default()),
        Session::start(b, Side::Acceptor, agent, Heartbeat::default()),
    );
    (l.unwrap(), r.unwrap())
}

#[tokio::test]
async fn streams_carry_bytes_both_ways_and_half_close() {
    let (laptop, mut agent) = pair().await;
    assert_eq!(agent.peer().role, Role::Laptop);
    let mut s = laptop.opener().open("x:1").unwrap();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        s.write_all(&sent).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        back
    });
    let inc = agent.accept().await.unwrap();
    assert_eq!(inc.target, "x:1");
    let mut st = inc.stream;
    let mut got = Vec::new();
    st.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload);
    st.write_all(b"done").await.unwrap();
    st.shutdown().await.unwrap();
    assert_eq!(writer.await.unwrap(), b"done");
}

#[tokio::test]
async fn a_slow_stream_does_not_stall_another() {
    let (laptop, mut agent) = pair().await;
    let opener = laptop.opener();
    let mut slow = opener.open("").unwrap();
    // Far more than one window, never read by the other side.
    let flood = tokio::spawn(async move {
        let _ = slow.write_all(&vec![1u8; 4 * WINDOW as usize]).await;
        slow
    });
    let _slow_in = agent.accept().await.unwrap();
    let mut fast = opener.open("").unwrap();
    fast.write_all(b"ping").await.unwrap();
    let mut fast_in = agent.accept().await.unwrap().stream;
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), fast_in.read_exact(&mut buf))
        .await
        .expect("the fast stream is not stalled")
        .unwrap();
    assert_eq!(&buf, b"ping");
    flood.abort();
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_declared_gone_within_a_second() {
    let (a, mut b) = tokio::io::duplex(64 * 1024);
    // A fake peer: says hello, then never another frame (a frozen laptop).
    let fake = tokio::spawn(async move {
        let mut out = BytesMut::new();
        Frame::Hello {
            version: VERSION,
            meta: HelloMeta::default(),
        }
        .encode(&mut out);
        b.write_all(&out).await.unwrap();
        let mut sink = vec![0u8; 4096];
        // Keep reading so writes do not block, but answer nothing.
        while b.read(&mut sink).await.map(|n| n > 0).unwrap_or(false) {}
    });
    let s = Session::start(
        a,
        Side::Acceptor,
        HelloMeta::default(),
        Heartbeat::default(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let reason = s.closed().await;
    assert!(
        started.elapsed() <= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert!(reason.contains("gone"), "{reason}");
    drop(s);
    fake.abort();
}

#[tokio::test]
async fn a_version_mismatch_is_refused_with_both_numbers() {
    let (a, mut b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut out = BytesMut::new();
        Frame::Hello {
            version: VERSION + 1,
            meta: HelloMeta::default(),
        }
        .encode(&mut out);
        b.write_all(&out).await.unwrap();
        let mut sink = Vec::new();
        let _ = b.read_to_end(&mut sink).await;
    });
    let err = Session::start(a, Side::Dialer, HelloMeta::default(), Heartbeat::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TunnelError::Version { ours: VERSION, theirs } if theirs == VERSION + 1));
}

#[tokio::test]
async fn closing_the_session_ends_every_stream() {
    let (laptop, mut agent) = pair().await;
    let mut s = laptop.opener().open("").unwrap();
    s.write_all(b"x").await.unwrap();
    let _inc = agent.accept().await.unwrap();
    drop(agent);
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "the stream ends when the session does");
    tokio::time::timeout(Duration::from_secs(2), laptop.closed())
        .await
        .unwrap();
    assert!(laptop.opener().open("").is_err());
}

/// A raw peer: speaks frames by hand to a real session, so it can break every rule.
struct RawPeer {
    io: tokio::io::DuplexStream,
}

impl RawPeer {
    /// A real session (the accepting side, as an agent) and a raw peer that said hello.
    async fn start() -> (Session, RawPeer) {
        let (a, b) = tokio::io::duplex(256 * 1024);
        let session = tokio::spawn(Session::start(
            a,
            Side::Acceptor,
            HelloMeta::default(),
            Heartbeat::default(),
        ));
        let mut peer = RawPeer { io: b };
        peer.send(&[Frame::Hello {
            version: VERSION,
            meta: HelloMeta::default(),
        }])
        .await;
        assert!(matches!(peer.next().await, Some(Frame::Hello { .. })));
        (session.await.unwrap().unwrap(), peer)
    }

    async fn send(&mut self, frames: &[Frame]) {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out);
        }
        // The session may close halfway through: what it said is read next.
        let _ = self.io.write_all(&out).await;
    }

    async fn next(&mut self) -> Option<Frame> {
        Frame::read(&mut self.io).await.ok().flatten()
    }

    /// The GoAway the session ends with; the stream must end after it.
    async fn goodbye(&mut self) -> String {
        let mut reason = None;
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(f) = self.next().await {
                if let Frame::GoAway { reason: r } = f {
                    reason = Some(r);
                }
            }
        })
        .await
        .expect("the session closes the stream");
        reason.expect("the session said why in a GoAway")
    }
}

fn data(id: u32, len: usize) -> Frame {
    Frame::Data {
        id,
        data: Bytes::from(vec![7u8; len]),
    }
}

#[tokio::test]
async fn data_beyond_the_credit_is_a_protocol_error() {
    let (mut session, mut peer) = RawPeer::start().await;
    peer.send(&[Frame::Open {
        id: 1,
        target: String::new(),
    }])
    .await;
    // Accepted, never read: only what fits in the stream's pipe (64 KiB) is credited back.
    let _held = session.accept().await.unwrap();
    let flood: Vec<Frame> = (0..6).map(|_| data(1, MAX_PAYLOAD)).collect();
    peer.send(&flood).await;
    let reason = peer.goodbye().await;
    assert!(
        reason.starts_with("protocol error: Data beyond the credit of stream 1"),
        "{reason}"
    );
    assert!(session.closed().await.contains("credit"));
}

#[tokio::test]
async fn data_for_a_stream_never_opened_is_a_protocol_error() {
    let (session, mut peer) = RawPeer::start().await;
    peer.send(&[data(7, 10)]).await;
    let reason = peer.goodbye().await;
    assert_eq!(
        reason,
        "protocol error: Data for stream 7, which was never opened"
    );
    drop(session);
}

#[tokio::test]
async fn a_window_returning_unused_credit_is_a_protocol_error() {
    let (session, mut peer) = RawPeer::start().await;
    let _mine = session.opener().open("x").unwrap();
    assert!(matches!(peer.next().await, Some(Frame::Open { id: 2, .. })));
    // Nothing was sent on stream 2, so no credit is owed.
    peer.send(&[Frame::Window {
        id: 2,
        credit: u32::MAX,
    }])
    .await;
    let reason = peer.goodbye().await;
    assert!(
        reason.contains("returns more credit than was used"),
        "{reason}"
    );
}

#[tokio::test]
async fn more_than_1024_streams_at_once_is_a_protocol_error() {
    let (mut session, mut peer) = RawPeer::start().await;
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(i) = session.accept().await {
            held.push(i);
        }
    });
    let opens: Vec<Frame> = (0..1025u32)
        .map(|i| Frame::Open {
            id: 2 * i + 1,
            target: String::new(),
        })
        .collect();
    peer.send(&opens).await;
    let reason = peer.goodbye().await;
    assert_eq!(reason, "protocol error: more than 1024 concurrent streams");
    held.await.unwrap();
}

#[tokio::test]
async fn opening_streams_faster_than_the_bound_is_a_protocol_error() {
    let (mut session, mut peer) = RawPeer::start().await;
    tokio::spawn(async move { while session.accept().await.is_some() {} });
    // Each stream ends at once, so only the rate is out of bounds.
    let churn: Vec<Frame> = (0..6000u32)
        .flat_map(|i| {
            [
                Frame::Open {
                    id: 2 * i + 1,
                    target: String::new(),
                },
                Frame::Reset { id: 2 * i + 1 },
            ]
        })
        .collect();
    peer.send(&churn).await;
    let reason = peer.goodbye().await;
    assert!(
        reason.starts_with("protocol error: streams opened faster than"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_carrying_its_nonce() {
    let (session, mut peer) = RawPeer::start().await;
    peer.send(&[Frame::Ping { nonce: 42 }]).await;
    let pong = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match peer.next().await {
                Some(Frame::Pong { nonce }) => return nonce,
                Some(_) => continue,
                None => panic!("the session closed"),
            }
        }
    })
    .await
    .expect("a pong within a second");
    assert_eq!(pong, 42);
    drop(session);
}

#[tokio::test]
async fn a_peer_that_sends_but_never_reads_is_cut_off() {
    // A tiny pipe the peer never drains: the session's writer blocks at once.
    let (a, mut b) = tokio::io::duplex(256);
    let settings = Settings {
        limits: Limits {
            max_queued: 64,
            ..Limits::default()
        },
        ..Settings::default()
    };
    let mut out = BytesMut::new();
    Frame::Hello {
        version: VERSION,
        meta: HelloMeta::default(),
    }
    .encode(&mut out);
    b.write_all(&out).await.unwrap();
    let mut session = Session::start_with(a, Side::Acceptor, HelloMeta::default(), settings)
        .await
        .unwrap();
    // Every stream the peer opens is dropped here, and each drop queues an Eof.
    tokio::spawn(async move {
        let mut out = BytesMut::new();
        for i in 0..600u32 {
            Frame::Open {
                id: 2 * i + 1,
                target: String::new(),
            }
            .encode(&mut out);
        }
        let _ = b.write_all(&out).await;
        std::future::pending::<()>().await;
        drop(b);
    });
    let reason = tokio::time::timeout(Duration::from_secs(5), async {
        while session.accept().await.is_some() {}
        session.close_reason()
    })
    .await
    .expect("the session gives up on the peer");
    assert!(reason.contains("the peer reads nothing"), "{reason}");
}

/// One direction of a link with a fixed one-way `delay`, in order; bytes due within a stall
/// (start, length, measured from the link's start) arrive when it ends.
async fn slow_link<R, W>(mut from: R, mut to: W, delay: Duration, stalls: Vec<(Duration, Duration)>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                return;
            }
        }
    });
    while let Some((mut due, bytes)) = rx.recv().await {
        for (at, len) in &stalls {
            let (from, until) = (start + *at, start + *at + *len);
            if due >= from && due < until {
                due = until;
            }
        }
        tokio::time::sleep_until(due).await;
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// Two real sessions over a link with `one_way` delay each way and the given stalls.
async fn slow_pair(one_way: Duration, stalls: Vec<(Duration, Duration)>) -> (Session, Session) {
    let (a, a_link) = tokio::io::duplex(256 * 1024);
    let (b_link, b) = tokio::io::duplex(256 * 1024);
    let (ar, aw) = tokio::io::split(a_link);
    let (br, bw) = tokio::io::split(b_link);
    tokio::spawn(slow_link(ar, bw, one_way, stalls.clone()));
    tokio::spawn(slow_link(br, aw, one_way, stalls));
    let (l, r) = tokio::join!(
        Session::start(a, Side::Dialer, HelloMeta::default(), Heartbeat::default()),
        Session::start(
            b,
            Side::Acceptor,
            HelloMeta::default(),
            Heartbeat::default()
        ),
    );
    (l.unwrap(), r.unwrap())
}

const FOREVER: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn a_slow_but_alive_peer_is_not_declared_dead() {
    // 300 ms round trips, and at 3 s a 900 ms stall in both directions: what a TCP
    // retransmission on such a link looks like. Then at 8 s the peer vanishes.
    let ms = Duration::from_millis;
    let (laptop, agent) = slow_pair(ms(150), vec![(ms(3000), ms(900)), (ms(8000), FOREVER)]).await;
    let started = Instant::now();
    tokio::time::sleep_until(started + ms(7900)).await;
    assert!(!laptop.opener().is_closed(), "{}", laptop.close_reason());
    assert!(!agent.opener().is_closed(), "{}", agent.close_reason());
    let rtt = agent.rtt().expect("round trips were measured");
    assert!(rtt >= ms(290) && rtt <= ms(400), "{rtt:?}");
    assert_eq!(agent.dead_after(), Heartbeat::RTT_FACTOR * rtt + ms(200));
    // Gone for real: noticed within the derived deadline plus one interval.
    let reason = agent.closed().await;
    let took = started.elapsed() - ms(8000);
    assert!(reason.contains("gone"), "{reason}");
    assert!(took <= agent.dead_after() + ms(200), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_vanished_peer_on_a_normal_link_is_declared_dead_within_a_second() {
    let ms = Duration::from_millis;
    let (laptop, agent) = slow_pair(ms(1), vec![(ms(5000), FOREVER)]).await;
    let started = Instant::now();
    tokio::time::sleep_until(started + ms(4900)).await;
    assert!(agent.rtt().is_some_and(|r| r < ms(10)), "{:?}", agent.rtt());
    assert!(!laptop.opener().is_closed());
    let reason = agent.closed().await;
    let took = started.elapsed() - ms(5000);
    assert!(reason.contains("gone"), "{reason}");
    assert!(took <= ms(1000), "{took:?}");
}

#[tokio::test]
async fn this_side_never_opens_more_streams_than_its_peer_allows() {
    let (mut laptop, agent) = pair().await;
    let laptop_open = laptop.opener();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..Limits::default().max_streams {
            held.push(laptop.accept().await.unwrap());
        }
        let _ = release_rx.await;
        drop(held);
        while laptop.accept().await.is_some() {}
    });
    let opener = agent.opener();
    let open: Vec<_> = (0..Limits::default().max_streams)
        .map(|_| opener.open("").unwrap())
        .collect();
    assert!(matches!(
        opener.open(""),
        Err(TunnelError::TooManyStreams(1024))
    ));
    // The peer saw nothing out of bounds, and streams that end make room.
    assert!(!laptop_open.is_closed());
    drop(open);
    release_tx.send(()).unwrap();
    let room = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(s) = opener.open("") {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(room.is_ok());
    assert!(!laptop_open.is_closed());
}

#[tokio::test]
async fn a_starved_process_does_not_declare_its_peer_gone() {
    let (laptop, agent) = pair().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Everything on this runtime stops for 1.5 s, as in a CPU-throttled pod: no frame is
    // read or written, and no timer fires.
    std::thread::sleep(Duration::from_millis(1500));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!laptop.opener().is_closed(), "{}", laptop.close_reason());
    assert!(!agent.opener().is_closed(), "{}", agent.close_reason());
}
