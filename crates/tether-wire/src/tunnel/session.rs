//! One tunnel session over one byte stream: the hello handshake, then streams that each
//! look like a TCP connection ([`DuplexStream`]), flow-controlled per stream, bounded
//! against a hostile peer, and heartbeats that close the session when the peer goes silent.
//!
//! Tasks: a reader (frames in → streams; it enforces the bounds of the parent module's
//! doc), a writer (control frames first, then stream frames, batched into few writes), a
//! heartbeat, and per stream one pump that moves bytes between the stream's duplex pipe
//! and frames. The session's [`CancellationToken`] ends all of them; every stream's pipe is
//! then dropped, so its user reads EOF and its writes fail.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{
        AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream, ReadHalf,
        WriteHalf,
    },
    sync::{Notify, Semaphore, mpsc},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    Frame, Heartbeat, HelloMeta, MAX_PAYLOAD, TunnelError, VERSION, WINDOW, heartbeat::RttEstimate,
};

/// How much a peer may make this side hold; breaking a bound is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams the peer opened that may be open at once.
    pub max_streams: usize,
    /// Stream opens a second the peer may sustain, after a burst of `max_streams`.
    pub opens_per_second: u32,
    /// Control frames (everything but Data, which credit bounds) waiting to be written: a
    /// peer that sends but never reads would otherwise grow this queue without end.
    pub max_queued: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_streams: 1024,
            opens_per_second: 4096,
            max_queued: 32 * 1024,
        }
    }
}

/// A session's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub heartbeat: Heartbeat,
    pub limits: Limits,
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
/// How long a hello may take, and a goodbye may block, before the stream is given up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(250);

struct StreamEntry {
    /// Data from the peer; `None` after its Eof.
    data_tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// Credit to send: permits are bytes.
    credit: Arc<Semaphore>,
    /// Bytes the peer sent that were not yet given back as credit: at most [`WINDOW`].
    unacked: Arc<AtomicU32>,
    /// The peer opened it (and so it counts against [`Limits::max_streams`]).
    from_peer: bool,
    cancel: CancellationToken,
}

struct Shared {
    /// Stream frames (Open, Data, Eof, Reset), in order: Eof must never pass its Data.
    out_tx: mpsc::UnboundedSender<Frame>,
    /// Ping and Window go ahead of queued data, so a bulk transfer neither delays
    /// heartbeats into a false "gone" nor starves the credit that drains it.
    ctl_tx: mpsc::UnboundedSender<Frame>,
    /// Frames other than Data in either queue (see [`Limits::max_queued`]).
    queued: AtomicUsize,
    /// The newest Ping's nonce still to answer: one slot, so a ping flood costs nothing.
    pong: Mutex<Option<u64>>,
    /// Wakes the writer for a pong.
    wake: Notify,
    streams: Mutex<HashMap<u32, StreamEntry>>,
    /// Streams in `streams` that the peer opened.
    peer_streams: AtomicUsize,
    next_id: AtomicU32,
    side: Side,
    settings: Settings,
    closed: CancellationToken,
    /// Cancelled once the writer has put its last bytes (a goodbye) on the wire.
    written: CancellationToken,
    reason: Mutex<Option<String>>,
    /// The GoAway reason the writer sends before it ends.
    goodbye: Mutex<Option<String>>,
    /// Milliseconds since `epoch` of the last frame from the peer.
    last_seen: AtomicU64,
    /// Milliseconds since `epoch` of the last write to the peer: a busy side sends no pings.
    last_sent: AtomicU64,
    rtt: RttEstimate,
    epoch: Instant,
}

impl Shared {
    fn close(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.closed.cancel();
    }

    /// Tells the peer `reason` in a GoAway, then closes.
    fn close_saying(&self, reason: String, local: String) {
        if !self.closed.is_cancelled()
            && let Ok(mut g) = self.goodbye.lock()
        {
            g.get_or_insert(reason);
        }
        self.close(local);
    }

    /// The peer broke the protocol: it is told so, and the session ends.
    fn violation(&self, e: TunnelError) {
        let text = match e {
            TunnelError::Protocol(_) => e.to_string(),
            other => format!("protocol error: {other}"),
        };
        tracing::debug!("closing a tunnel session: {text}");
        self.close_saying(text.clone(), text);
    }

    fn send(&self, frame: Frame) {
        if let Frame::Data { .. } = frame {
            // Credit bounds these; a send after the writer ended has nowhere to go.
            let _ = self.out_tx.send(frame);
            return;
        }
        let queue = match frame {
            Frame::Ping { .. } | Frame::Pong { .. } | Frame::Window { .. } => &self.ctl_tx,
            _ => &self.out_tx,
        };
        let queued = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        if queued > self.settings.limits.max_queued {
            return self.violation(TunnelError::Protocol(format!(
                "the peer reads nothing: {queued} frames wait to be written"
            )));
        }
        // A send after the writer ended has nowhere to go; the session is closing anyway.
        let _ = queue.send(frame);
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether `id` is of the parity the peer opens.
    fn peer_parity(&self, id: u32) -> bool {
        (id % 2 == 1) == (self.side == Side::Acceptor)
    }

    /// Registers stream `id` and starts its pump; returns the user's end, or `None` when
    /// the id is taken. `open` is the Open frame to queue in the same breath, so Opens go
    /// on the wire in the order of their ids.
    fn start_stream(
        self: &Arc<Self>,
        id: u32,
        from_peer: bool,
        open: Option<Frame>,
    ) -> Option<DuplexStream> {
        let (user, pipe) = tokio::io::duplex(PIPE);
        let (data_tx, data_rx) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(WINDOW as usize));
        let unacked = Arc::new(AtomicU32::new(0));
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
                    unacked: unacked.clone(),
                    from_peer,
                    cancel: cancel.clone(),
                },
            );
            if from_peer {
                self.peer_streams.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(open) = open {
                self.send(open);
            }
        }
        let pump = Pump {
            shared: self.clone(),
            id,
            credit,
            unacked,
            cancel,
        };
        tokio::spawn(pump.run(pipe, data_rx));
        Some(user)
    }

    fn remove_stream(&self, id: u32) -> Option<StreamEntry> {
        let entry = self.streams.lock().ok()?.remove(&id)?;
        if entry.from_peer {
            self.peer_streams.fetch_sub(1, Ordering::Relaxed);
        }
        Some(entry)
    }
}

/// One stream's bytes: pipe → Data frames (within credit), Data frames → pipe (with
/// credit given back once written). Ends with Reset when either side aborts.
struct Pump {
    shared: Arc<Shared>,
    id: u32,
    credit: Arc<Semaphore>,
    unacked: Arc<AtomicU32>,
    cancel: CancellationToken,
}

impl Pump {
    async fn run(self, pipe: DuplexStream, mut data_rx: mpsc::UnboundedReceiver<Bytes>) {
        let Pump {
            shared,
            id,
            credit,
            unacked,
            cancel,
        } = self;
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
            // Credit goes back in batches: a Window frame per small message would be a
            // second tiny write right before each response, which Nagle's algorithm on
            // the port-forward's socket turns into a delayed-ACK wait (40 ms) per request.
            let mut consumed = 0u32;
            while let Some(data) = data_rx.recv().await {
                if pipe_wr.write_all(&data).await.is_err() {
                    return false;
                }
                consumed += data.len() as u32;
                if consumed >= WINDOW / 4 {
                    // Counted back before the frame leaves, so the peer's next Data
                    // never looks like an overrun.
                    unacked.fetch_sub(consumed, Ordering::Relaxed);
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
        shared.remove_stream(id);
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
        // The peer counts the streams this side opens against its own bound (the default
        // one, as both sides run it): past it, the peer would end the whole session.
        let own = self
            .shared
            .streams
            .lock()
            .map_or(0, |s| s.len())
            .saturating_sub(self.shared.peer_streams.load(Ordering::Relaxed));
        if own >= Limits::default().max_streams {
            return Err(TunnelError::TooManyStreams(own));
        }
        let id = self.shared.next_id.fetch_add(2, Ordering::Relaxed);
        let open = Frame::Open {
            id,
            target: target.to_owned(),
        };
        self.shared
            .start_stream(id, false, Some(open))
            .ok_or(TunnelError::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Whether both handles open streams on the same session.
    pub fn same_session(&self, other: &Opener) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// The accepting side's handshake, after the peer's Hello was read and before anything was
/// said: [`welcome`](Handshake::welcome) the peer or [`refuse`](Handshake::refuse) it.
pub struct Handshake<IO> {
    rd: BufReader<ReadHalf<IO>>,
    wr: WriteHalf<IO>,
    ours: HelloMeta,
    peer: HelloMeta,
}

impl<IO> Handshake<IO>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    /// What the peer said about itself.
    pub fn peer(&self) -> &HelloMeta {
        &self.peer
    }

    /// Answers with GoAway alone and closes: the peer learns the reason and nothing else.
    pub async fn refuse(mut self, reason: &str) {
        goodbye(&mut self.wr, Vec::new(), reason).await;
    }

    /// Answers with this side's Hello and starts the session.
    pub fn welcome(self, side: Side, settings: Settings) -> Session {
        let mut hello = BytesMut::new();
        Frame::Hello {
            version: VERSION,
            meta: self.ours,
        }
        .encode(&mut hello);
        Session::run(self.rd, self.wr, side, self.peer, settings, hello)
    }
}

/// Writes `before`, then a GoAway, then ends the stream, giving up on a peer that reads
/// nothing after [`GOODBYE_TIMEOUT`].
async fn goodbye<W: AsyncWrite + Unpin>(wr: &mut W, before: Vec<u8>, reason: &str) {
    let mut out = BytesMut::from(&before[..]);
    Frame::GoAway {
        reason: reason.to_owned(),
    }
    .encode(&mut out);
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        wr.write_all(&out).await?;
        wr.flush().await?;
        wr.shutdown().await
    })
    .await;
}

/// A running session. Dropping it closes the session.
pub struct Session {
    shared: Arc<Shared>,
    incoming_rx: mpsc::UnboundedReceiver<Incoming>,
    peer: HelloMeta,
}

impl Session {
    /// Says hello over `io`, reads the peer's, and starts the session's tasks with the
    /// default [`Limits`]. The dialling side's handshake.
    pub async fn start<IO>(
        io: IO,
        side: Side,
        meta: HelloMeta,
        heartbeat: Heartbeat,
    ) -> Result<Session, TunnelError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let settings = Settings {
            heartbeat,
            ..Settings::default()
        };
        Session::start_with(io, side, meta, settings).await
    }

    /// [`start`](Session::start) with every setting given.
    pub async fn start_with<IO>(
        io: IO,
        side: Side,
        meta: HelloMeta,
        settings: Settings,
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
        let peer = match read_hello(&mut rd).await {
            Err(TunnelError::Version { ours, theirs }) => {
                let reason = format!("protocol version {ours} cannot speak {theirs}");
                goodbye(&mut wr, Vec::new(), &reason).await;
                return Err(TunnelError::Version { ours, theirs });
            }
            other => other?,
        };
        Ok(Session::run(rd, wr, side, peer, settings, BytesMut::new()))
    }

    /// The accepting side's handshake: reads the peer's Hello before saying anything, so a
    /// peer that may not attach is refused having learnt nothing. A Hello that does not
    /// parse is answered with GoAway `protocol error: …` and the stream closed; one of
    /// another version with this side's Hello and a GoAway naming both versions.
    pub async fn hear<IO>(io: IO, meta: HelloMeta) -> Result<Handshake<IO>, TunnelError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, mut wr) = tokio::io::split(io);
        let mut rd = BufReader::with_capacity(MAX_PAYLOAD, rd);
        match read_hello(&mut rd).await {
            Ok(peer) => Ok(Handshake {
                rd,
                wr,
                ours: meta,
                peer,
            }),
            Err(e @ (TunnelError::Io(_) | TunnelError::Closed | TunnelError::GoAway(_))) => Err(e),
            Err(TunnelError::Version { ours, theirs }) => {
                let mut hello = BytesMut::new();
                Frame::Hello {
                    version: VERSION,
                    meta,
                }
                .encode(&mut hello);
                let reason = format!("protocol version {ours} cannot speak {theirs}");
                goodbye(&mut wr, hello.to_vec(), &reason).await;
                Err(TunnelError::Version { ours, theirs })
            }
            Err(e) => {
                let reason = match &e {
                    TunnelError::Protocol(_) => e.to_string(),
                    other => format!("protocol error: {other}"),
                };
                goodbye(&mut wr, Vec::new(), &reason).await;
                Err(e)
            }
        }
    }

    fn run<R, W>(
        rd: R,
        wr: W,
        side: Side,
        peer: HelloMeta,
        settings: Settings,
        first: BytesMut,
    ) -> Session
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            out_tx,
            ctl_tx,
            queued: AtomicUsize::new(0),
            pong: Mutex::new(None),
            wake: Notify::new(),
            streams: Mutex::new(HashMap::new()),
            peer_streams: AtomicUsize::new(0),
            next_id: AtomicU32::new(match side {
                Side::Dialer => 1,
                Side::Acceptor => 2,
            }),
            side,
            settings,
            closed: CancellationToken::new(),
            written: CancellationToken::new(),
            reason: Mutex::new(None),
            goodbye: Mutex::new(None),
            last_seen: AtomicU64::new(0),
            last_sent: AtomicU64::new(0),
            rtt: RttEstimate::default(),
            epoch: Instant::now(),
        });
        tokio::spawn(write_loop(shared.clone(), wr, first, ctl_rx, out_rx));
        tokio::spawn(read_loop(shared.clone(), rd, incoming_tx));
        tokio::spawn(heartbeat_loop(shared.clone()));
        Session {
            shared,
            incoming_rx,
            peer,
        }
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

    /// The smoothed round trip to the peer, once one was measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.shared.rtt.get()
    }

    /// The silence after which the peer counts as gone now.
    pub fn dead_after(&self) -> Duration {
        self.shared.settings.heartbeat.dead_after(self.rtt())
    }

    /// Tells the peer why, then closes; returns once the goodbye is on the wire (or the
    /// peer took too long to read it).
    pub async fn go_away(&self, reason: &str) {
        self.shared
            .close_saying(reason.to_owned(), format!("said goodbye: {reason}"));
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT * 2, self.shared.written.cancelled()).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.close("the session was dropped".into());
    }
}

/// Reads the peer's first frame, which must be a Hello of this version.
async fn read_hello<R: AsyncRead + Unpin>(rd: &mut R) -> Result<HelloMeta, TunnelError> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, Frame::read(rd))
        .await
        .map_err(|_| TunnelError::HelloTimeout)??;
    match first {
        Some(Frame::Hello { version, meta }) if version == VERSION => Ok(meta),
        Some(Frame::Hello { version, .. }) => Err(TunnelError::Version {
            ours: VERSION,
            theirs: version,
        }),
        Some(Frame::GoAway { reason }) => Err(TunnelError::GoAway(reason)),
        Some(_) => Err(TunnelError::Protocol("the first frame is not Hello".into())),
        None => Err(TunnelError::Closed),
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut wr: W,
    mut buf: BytesMut,
    mut ctl_rx: mpsc::UnboundedReceiver<Frame>,
    mut out_rx: mpsc::UnboundedReceiver<Frame>,
) {
    let dequeued = |f: &Frame| {
        if !matches!(f, Frame::Data { .. }) {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
    };
    loop {
        if !buf.is_empty() {
            let wrote = tokio::select! {
                r = async {
                    wr.write_all(&buf).await?;
                    wr.flush().await
                } => r,
                // A peer that reads nothing must not hold the writer past the close.
                _ = shared.closed.cancelled() => break,
            };
            if let Err(e) = wrote {
                shared.close(format!("cannot write to the peer: {e}"));
                break;
            }
            buf.clear();
            shared.last_sent.store(shared.now_ms(), Ordering::Relaxed);
        }
        let first = tokio::select! {
            biased;
            _ = shared.closed.cancelled() => break,
            _ = shared.wake.notified() => None,
            f = ctl_rx.recv() => match f { Some(f) => Some(f), None => break },
            f = out_rx.recv() => match f { Some(f) => Some(f), None => break },
        };
        if let Some(nonce) = shared.pong.lock().ok().and_then(|mut p| p.take()) {
            Frame::Pong { nonce }.encode(&mut buf);
        }
        if let Some(f) = first {
            dequeued(&f);
            f.encode(&mut buf);
        }
        // Batch what is queued into one write, control frames first.
        while buf.len() < MAX_PAYLOAD {
            match ctl_rx.try_recv().or_else(|_| out_rx.try_recv()) {
                Ok(f) => {
                    dequeued(&f);
                    f.encode(&mut buf);
                }
                Err(_) => break,
            }
        }
    }
    let reason = shared.goodbye.lock().ok().and_then(|mut g| g.take());
    match reason {
        Some(reason) => goodbye(&mut wr, Vec::new(), &reason).await,
        None => {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, wr.shutdown()).await;
        }
    }
    shared.written.cancel();
}

/// Admits the peer's stream opens at a bounded rate: a token bucket of `max_streams`
/// refilled at `opens_per_second`.
struct OpenBucket {
    tokens: f64,
    last: Instant,
    capacity: f64,
    rate: f64,
}

impl OpenBucket {
    fn new(limits: &Limits) -> OpenBucket {
        let capacity = limits.max_streams.max(1) as f64;
        OpenBucket {
            tokens: capacity,
            last: Instant::now(),
            capacity,
            rate: f64::from(limits.opens_per_second),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut rd: R,
    incoming_tx: mpsc::UnboundedSender<Incoming>,
) {
    shared.last_seen.store(shared.now_ms(), Ordering::Relaxed);
    let limits = shared.settings.limits;
    let mut bucket = OpenBucket::new(&limits);
    // The highest id the peer opened: a frame for a lower id that is no longer open is
    // for a stream that ended while the frame was in flight.
    let mut max_peer_id = 0u32;
    let protocol = |text: String| TunnelError::Protocol(text);
    loop {
        let frame = tokio::select! {
            f = Frame::read(&mut rd) => f,
            _ = shared.closed.cancelled() => return,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return shared.close("the peer closed the tunnel".into()),
            Err(TunnelError::Io(e)) => {
                return shared.close(format!("the tunnel's byte stream failed: {e}"));
            }
            Err(e) => return shared.violation(e),
        };
        shared.last_seen.store(shared.now_ms(), Ordering::Relaxed);
        let ever_opened = |id: u32| {
            id != 0
                && if shared.peer_parity(id) {
                    id <= max_peer_id
                } else {
                    id < shared.next_id.load(Ordering::Relaxed)
                }
        };
        let unknown = |id: u32, what: &str| {
            protocol(format!("{what} for stream {id}, which was never opened"))
        };
        let broken = match frame {
            Frame::Open { id, target } => {
                if id == 0 || !shared.peer_parity(id) {
                    Some(protocol(format!(
                        "stream {id} opened with this side's parity"
                    )))
                } else if !bucket.take() {
                    Some(protocol(format!(
                        "streams opened faster than {} a second",
                        limits.opens_per_second
                    )))
                } else if shared.peer_streams.load(Ordering::Relaxed) >= limits.max_streams {
                    Some(protocol(format!(
                        "more than {} concurrent streams",
                        limits.max_streams
                    )))
                } else {
                    match shared.start_stream(id, true, None) {
                        Some(stream) => {
                            max_peer_id = max_peer_id.max(id);
                            // Nobody accepting on this side: the stream's pump resets it.
                            let _ = incoming_tx.send(Incoming { target, stream });
                            None
                        }
                        None => Some(protocol(format!("stream {id} opened twice"))),
                    }
                }
            }
            Frame::Data { id, data } => {
                let entry = shared
                    .streams
                    .lock()
                    .ok()
                    .and_then(|s| s.get(&id).map(|e| (e.data_tx.clone(), e.unacked.clone())));
                match entry {
                    Some((None, _)) => Some(protocol(format!("Data after Eof on stream {id}"))),
                    Some((Some(tx), unacked)) => {
                        let len = data.len() as u32;
                        let now = unacked.fetch_add(len, Ordering::Relaxed) as u64 + len as u64;
                        if now > u64::from(WINDOW) {
                            Some(protocol(format!(
                                "Data beyond the credit of stream {id} ({now} bytes \
                                 unacknowledged, the window is {WINDOW})"
                            )))
                        } else {
                            let _ = tx.send(data);
                            None
                        }
                    }
                    None => (!ever_opened(id)).then(|| unknown(id, "Data")),
                }
            }
            Frame::Window { id, credit } => {
                let sem = shared
                    .streams
                    .lock()
                    .ok()
                    .and_then(|s| s.get(&id).map(|e| e.credit.clone()));
                match sem {
                    Some(sem) => {
                        if sem.available_permits() as u64 + u64::from(credit) > u64::from(WINDOW) {
                            Some(protocol(format!(
                                "a Window on stream {id} returns more credit than was used"
                            )))
                        } else {
                            sem.add_permits(credit as usize);
                            None
                        }
                    }
                    None => (!ever_opened(id)).then(|| unknown(id, "Window")),
                }
            }
            Frame::Eof { id } => {
                let known = shared
                    .streams
                    .lock()
                    .ok()
                    .map(|mut s| s.get_mut(&id).map(|e| e.data_tx.take().is_some()));
                match known.flatten() {
                    Some(true) => None,
                    Some(false) => Some(protocol(format!("a second Eof on stream {id}"))),
                    None => (!ever_opened(id)).then(|| unknown(id, "Eof")),
                }
            }
            Frame::Reset { id } => match shared.remove_stream(id) {
                Some(e) => {
                    e.credit.close();
                    e.cancel.cancel();
                    None
                }
                None => (!ever_opened(id)).then(|| unknown(id, "Reset")),
            },
            Frame::Ping { nonce } => {
                if let Ok(mut p) = shared.pong.lock() {
                    *p = Some(nonce);
                }
                shared.wake.notify_one();
                None
            }
            Frame::Pong { nonce } => {
                // The nonce is this side's clock when it pinged; a forged one can at most
                // stretch the deadline to the heartbeat's limit.
                let now_us = shared.epoch.elapsed().as_micros() as u64;
                if let Some(rtt) = now_us.checked_sub(nonce) {
                    let rtt = Duration::from_micros(rtt).min(shared.settings.heartbeat.limit);
                    shared.rtt.sample(rtt);
                }
                None
            }
            Frame::GoAway { reason } => return shared.close(format!("the peer left: {reason}")),
            Frame::Hello { .. } => Some(protocol("a second Hello".into())),
        };
        if let Some(e) = broken {
            return shared.violation(e);
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let heartbeat = shared.settings.heartbeat;
    let interval_ms = heartbeat.interval.as_millis() as u64;
    let mut tick = tokio::time::interval(heartbeat.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev_tick = shared.now_ms();
    let mut seen_before = shared.last_seen.load(Ordering::Relaxed);
    // How late this task's ticks came since the peer's last frame: while this process was
    // starved (a CPU-throttled pod, a busy laptop), so was its reader, and that silence
    // says nothing about the peer.
    let mut starved = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.closed.cancelled() => return,
        }
        let now = shared.now_ms();
        let seen = shared.last_seen.load(Ordering::Relaxed);
        if seen != seen_before {
            (seen_before, starved) = (seen, 0);
        }
        starved += now.saturating_sub(prev_tick).saturating_sub(interval_ms);
        prev_tick = now;
        let silent = Duration::from_millis(now.saturating_sub(seen));
        let counted = silent.saturating_sub(Duration::from_millis(starved));
        if counted > heartbeat.dead_after(shared.rtt.get()) {
            return shared.close(TunnelError::Silent(silent).to_string());
        }
        // Only a quiet side pings: any frame proves liveness, and a ping between a
        // request and its response would be one more small write to wait on.
        let sent =
            Duration::from_millis(now.saturating_sub(shared.last_sent.load(Ordering::Relaxed)));
        if sent >= heartbeat.interval {
            let nonce = shared.epoch.elapsed().as_micros() as u64;
            shared.send(Frame::Ping { nonce });
        }
    }
}

#[cfg(test)]
mod tests;
