//! One tunnel session over one byte stream: the hello handshake, then streams that each
//! look like a TCP connection ([`DuplexStream`]), flow-controlled per stream, and
//! heartbeats that close the session when the peer goes silent.
//!
//! Tasks: a reader (frames in → streams), a writer (one queue of frames out → bytes), a
//! heartbeat, and per stream one pump that moves bytes between the stream's duplex pipe
//! and frames. The session's [`CancellationToken`] ends all of them; every stream's pipe is
//! then dropped, so its user reads EOF and its writes fail.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream},
    sync::{Semaphore, mpsc},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{Frame, HelloMeta, MAX_PAYLOAD, TunnelError, VERSION, WINDOW};

/// How often to ping, and how long a silent peer is given before it counts as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval: Duration,
    pub dead_after: Duration,
}

impl Default for Heartbeat {
    /// A vanished peer is noticed within a second (`dead_after` plus one `interval`).
    fn default() -> Heartbeat {
        Heartbeat {
            interval: Duration::from_millis(200),
            dead_after: Duration::from_millis(800),
        }
    }
}

/// Which side of the byte stream this is: decides the parity of the stream ids it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Dialled the connection (the laptop): opens odd ids.
    Dialer,
    /// Accepted it (the agent): opens even ids.
    Acceptor,
}

/// A stream the peer opened.
pub struct Incoming {
    /// What the peer asked to reach; empty for "the intercepted port".
    pub target: String,
    pub stream: DuplexStream,
}

/// Bytes of a duplex pipe between a stream's user and its pump.
const PIPE: usize = 64 * 1024;
/// The largest Data frame sent; smaller than [`MAX_PAYLOAD`] keeps latency fair.
const CHUNK: usize = 16 * 1024;

struct StreamEntry {
    /// Data from the peer; `None` after its Eof.
    data_tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// Credit to send: permits are bytes.
    credit: Arc<Semaphore>,
    cancel: CancellationToken,
}

struct Shared {
    /// Stream frames (Open, Data, Eof, Reset), in order: Eof must never pass its Data.
    out_tx: mpsc::UnboundedSender<Frame>,
    /// Ping, Pong, Window and GoAway go ahead of queued data, so a bulk transfer neither
    /// delays heartbeats into a false "gone" nor starves the credit that drains it.
    ctl_tx: mpsc::UnboundedSender<Frame>,
    streams: Mutex<HashMap<u32, StreamEntry>>,
    next_id: AtomicU32,
    closed: CancellationToken,
    reason: Mutex<Option<String>>,
    /// Milliseconds since `epoch` of the last frame from the peer.
    last_seen: AtomicU64,
    /// Milliseconds since `epoch` of the last write to the peer: a busy side sends no pings.
    last_sent: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn close(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.closed.cancel();
    }

    fn send(&self, frame: Frame) {
        let queue = match frame {
            Frame::Ping { .. }
            | Frame::Pong { .. }
            | Frame::Window { .. }
            | Frame::GoAway { .. } => &self.ctl_tx,
            _ => &self.out_tx,
        };
        // A send after the writer ended has nowhere to go; the session is closing anyway.
        let _ = queue.send(frame);
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_seen.store(ms, Ordering::Relaxed);
    }

    /// Registers stream `id` and starts its pump; returns the user's end.
    fn start_stream(self: &Arc<Self>, id: u32) -> Option<DuplexStream> {
        let (user, pipe) = tokio::io::duplex(PIPE);
        let (data_tx, data_rx) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(WINDOW as usize));
        let cancel = self.closed.child_token();
        {
            let mut streams = self.streams.lock().ok()?;
            if streams.contains_key(&id) {
                return None;
            }
            streams.insert(
                id,
                StreamEntry {
                    data_tx: Some(data_tx),
                    credit: credit.clone(),
                    cancel: cancel.clone(),
                },
            );
        }
        tokio::spawn(pump(self.clone(), id, pipe, data_rx, credit, cancel));
        Some(user)
    }
}

/// Moves one stream's bytes: pipe → Data frames (within credit), Data frames → pipe (with
/// credit given back once written). Ends with Reset when either side aborts.
async fn pump(
    shared: Arc<Shared>,
    id: u32,
    pipe: DuplexStream,
    mut data_rx: mpsc::UnboundedReceiver<Bytes>,
    credit: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let (mut pipe_rd, mut pipe_wr) = tokio::io::split(pipe);
    let outbound = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match pipe_rd.read(&mut buf).await {
                Ok(0) => {
                    shared.send(Frame::Eof { id });
                    return true;
                }
                Ok(n) => n,
                Err(_) => return false,
            };
            match credit.acquire_many(n as u32).await {
                Ok(p) => p.forget(),
                Err(_) => return false,
            }
            shared.send(Frame::Data {
                id,
                data: Bytes::copy_from_slice(&buf[..n]),
            });
        }
    };
    let inbound = async {
        // Credit goes back in batches: a Window frame per small message would be a second
        // tiny write right before each response, which Nagle's algorithm on the
        // port-forward's socket turns into a delayed-ACK wait (40 ms) per request.
        let mut consumed = 0u32;
        while let Some(data) = data_rx.recv().await {
            if pipe_wr.write_all(&data).await.is_err() {
                return false;
            }
            consumed += data.len() as u32;
            if consumed >= WINDOW / 4 {
                shared.send(Frame::Window {
                    id,
                    credit: consumed,
                });
                consumed = 0;
            }
        }
        let _ = pipe_wr.shutdown().await;
        true
    };
    let clean = tokio::select! {
        _ = cancel.cancelled() => false,
        (out_ok, in_ok) = async { tokio::join!(outbound, inbound) } => out_ok && in_ok,
    };
    if !clean && !shared.closed.is_cancelled() {
        shared.send(Frame::Reset { id });
    }
    if let Ok(mut streams) = shared.streams.lock() {
        streams.remove(&id);
    }
}

/// A cheap handle that opens streams on a session.
#[derive(Clone)]
pub struct Opener {
    shared: Arc<Shared>,
}

impl Opener {
    /// Opens a stream to `target` (empty: the intercepted port). The peer answers with data
    /// or a Reset; there is no separate accept, so opening costs no round trip.
    pub fn open(&self, target: &str) -> Result<DuplexStream, TunnelError> {
        if self.shared.closed.is_cancelled() {
            return Err(TunnelError::Closed);
        }
        let id = self.shared.next_id.fetch_add(2, Ordering::Relaxed);
        let user = self.shared.start_stream(id).ok_or(TunnelError::Closed)?;
        self.shared.send(Frame::Open {
            id,
            target: target.to_owned(),
        });
        Ok(user)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }
}

/// A running session. Dropping it closes the session.
pub struct Session {
    shared: Arc<Shared>,
    incoming_rx: mpsc::UnboundedReceiver<Incoming>,
    peer: HelloMeta,
}

impl Session {
    /// Says hello over `io`, reads the peer's, and starts the session's tasks.
    pub async fn start<IO>(
        io: IO,
        side: Side,
        meta: HelloMeta,
        heartbeat: Heartbeat,
    ) -> Result<Session, TunnelError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, mut wr) = tokio::io::split(io);
        let mut rd = BufReader::with_capacity(MAX_PAYLOAD, rd);
        let mut hello = BytesMut::new();
        Frame::Hello {
            version: VERSION,
            meta,
        }
        .encode(&mut hello);
        wr.write_all(&hello).await?;
        wr.flush().await?;
        let first = tokio::time::timeout(Duration::from_secs(10), Frame::read(&mut rd))
            .await
            .map_err(|_| TunnelError::HelloTimeout)??;
        let peer = match first {
            Some(Frame::Hello { version, meta }) if version == VERSION => meta,
            Some(Frame::Hello { version, .. }) => {
                let mut bye = BytesMut::new();
                Frame::GoAway {
                    reason: format!("protocol version {VERSION} cannot speak {version}"),
                }
                .encode(&mut bye);
                let _ = wr.write_all(&bye).await;
                let _ = wr.flush().await;
                return Err(TunnelError::Version {
                    ours: VERSION,
                    theirs: version,
                });
            }
            Some(Frame::GoAway { reason }) => return Err(TunnelError::GoAway(reason)),
            Some(_) => return Err(TunnelError::Protocol("the first frame is not Hello".into())),
            None => return Err(TunnelError::Closed),
        };

        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            out_tx,
            ctl_tx,
            streams: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(match side {
                Side::Dialer => 1,
                Side::Acceptor => 2,
            }),
            closed: CancellationToken::new(),
            reason: Mutex::new(None),
            last_seen: AtomicU64::new(0),
            last_sent: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        tokio::spawn(write_loop(shared.clone(), wr, ctl_rx, out_rx));
        tokio::spawn(read_loop(shared.clone(), rd, incoming_tx));
        tokio::spawn(heartbeat_loop(shared.clone(), heartbeat));
        Ok(Session {
            shared,
            incoming_rx,
            peer,
        })
    }

    /// What the peer said about itself.
    pub fn peer(&self) -> &HelloMeta {
        &self.peer
    }

    pub fn opener(&self) -> Opener {
        Opener {
            shared: self.shared.clone(),
        }
    }

    /// The next stream the peer opens; `None` once the session is closed.
    pub async fn accept(&mut self) -> Option<Incoming> {
        tokio::select! {
            i = self.incoming_rx.recv() => i,
            _ = self.shared.closed.cancelled() => None,
        }
    }

    /// Resolves when the session ends, with the reason.
    pub async fn closed(&self) -> String {
        self.shared.closed.cancelled().await;
        self.close_reason()
    }

    pub fn close_reason(&self) -> String {
        self.shared
            .reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "closed".into())
    }

    /// Tells the peer why, then closes.
    pub async fn go_away(&self, reason: &str) {
        self.shared.send(Frame::GoAway {
            reason: reason.to_owned(),
        });
        // Give the writer a moment to put it on the wire.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.shared.close(format!("said goodbye: {reason}"));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.close("the session was dropped".into());
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut wr: W,
    mut ctl_rx: mpsc::UnboundedReceiver<Frame>,
    mut out_rx: mpsc::UnboundedReceiver<Frame>,
) {
    let mut buf = BytesMut::with_capacity(MAX_PAYLOAD);
    loop {
        let frame = tokio::select! {
            biased;
            _ = shared.closed.cancelled() => None,
            f = ctl_rx.recv() => f,
            f = out_rx.recv() => f,
        };
        let Some(frame) = frame else { break };
        frame.encode(&mut buf);
        // Batch what is queued into one write, control frames first.
        while buf.len() < MAX_PAYLOAD {
            match ctl_rx.try_recv().or_else(|_| out_rx.try_recv()) {
                Ok(f) => f.encode(&mut buf),
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&buf).await {
            shared.close(format!("cannot write to the peer: {e}"));
            break;
        }
        buf.clear();
        if let Err(e) = wr.flush().await {
            shared.close(format!("cannot write to the peer: {e}"));
            break;
        }
        let ms = shared.epoch.elapsed().as_millis() as u64;
        shared.last_sent.store(ms, Ordering::Relaxed);
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut rd: R,
    incoming_tx: mpsc::UnboundedSender<Incoming>,
) {
    shared.touch();
    loop {
        let frame = tokio::select! {
            f = Frame::read(&mut rd) => f,
            _ = shared.closed.cancelled() => return,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return shared.close("the peer closed the tunnel".into()),
            Err(e) => return shared.close(e.to_string()),
        };
        shared.touch();
        match frame {
            Frame::Open { id, target } => match shared.start_stream(id) {
                Some(stream) => {
                    if incoming_tx.send(Incoming { target, stream }).is_err() {
                        // Nobody accepts streams on this side: the pump resets it.
                    }
                }
                None => {
                    return shared.close(format!("protocol violation: stream {id} opened twice"));
                }
            },
            Frame::Data { id, data } => {
                let tx = shared
                    .streams
                    .lock()
                    .ok()
                    .and_then(|s| s.get(&id).and_then(|e| e.data_tx.clone()));
                if let Some(tx) = tx {
                    let _ = tx.send(data);
                }
            }
            Frame::Window { id, credit } => {
                if let Some(e) = shared
                    .streams
                    .lock()
                    .ok()
                    .and_then(|s| s.get(&id).map(|e| e.credit.clone()))
                {
                    e.add_permits(credit as usize);
                }
            }
            Frame::Eof { id } => {
                if let Ok(mut s) = shared.streams.lock() {
                    if let Some(e) = s.get_mut(&id) {
                        e.data_tx = None;
                    }
                }
            }
            Frame::Reset { id } => {
                let entry = shared.streams.lock().ok().and_then(|mut s| s.remove(&id));
                if let Some(e) = entry {
                    e.credit.close();
                    e.cancel.cancel();
                }
            }
            // Liveness needs no answer: the peer pings whenever it has been quiet.
            Frame::Ping { .. } | Frame::Pong { .. } => {}
            Frame::GoAway { reason } => return shared.close(format!("the peer left: {reason}")),
            Frame::Hello { .. } => {
                return shared.close("protocol violation: a second Hello".into());
            }
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, heartbeat: Heartbeat) {
    let mut tick = tokio::time::interval(heartbeat.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.closed.cancelled() => return,
        }
        let seen = Duration::from_millis(shared.last_seen.load(Ordering::Relaxed));
        let silent = shared.epoch.elapsed().saturating_sub(seen);
        if silent > heartbeat.dead_after {
            return shared.close(TunnelError::Silent(silent).to_string());
        }
        // Only a quiet side pings: any frame proves liveness, and a ping between a
        // request and its response would be one more small write to wait on.
        let sent = Duration::from_millis(shared.last_sent.load(Ordering::Relaxed));
        if shared.epoch.elapsed().saturating_sub(sent) >= heartbeat.interval {
            nonce += 1;
            shared.send(Frame::Ping { nonce });
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::tunnel::Role;

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
        assert!(
            matches!(err, TunnelError::Version { ours: VERSION, theirs } if theirs == VERSION + 1)
        );
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
}
