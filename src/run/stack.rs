//! The userspace TCP/IP stack on the namespace's TUN device (smoltcp in "any IP" mode: it
//! answers for every destination), and the dispatch of what CMD opens.
//!
//! One task owns the interface and polls it; connection tasks reach their sockets through
//! [`Shared`] and ask for a poll when they changed one. Packets from `tun0` are looked at
//! before smoltcp sees them ([`packet::classify`]):
//! - a SYN to a new destination is held while the destination is dialed: through
//!   [`ClusterNet::dial`] for cluster addresses, from the laptop otherwise. On success a
//!   listening socket for exactly that destination is made and the SYN handed to it, so
//!   the handshake completes only when the far end accepted; on failure tether answers the
//!   SYN itself (a reset for "refused", ICMP unreachable for the rest), so CMD's connect
//!   fails at once. Retransmitted SYNs meanwhile are dropped.
//! - TCP and UDP go to smoltcp, which serves DNS on the stack's address (UDP and TCP port
//!   53) and refuses other UDP with ICMP port unreachable; ICMP and the rest are dropped.
//!
//! Memory is bounded: at most [`MAX_FLOWS`] connections (further SYNs are refused), each
//! with fixed smoltcp buffers, and at most [`MAX_DNS_QUERIES`] DNS queries in flight.

use std::{
    collections::{HashMap, VecDeque, hash_map::Entry},
    hash::{BuildHasher, Hasher},
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use smoltcp::{
    iface::{Config, Interface, SocketHandle},
    socket::{
        tcp::{self, State},
        udp,
    },
    time::{Duration as SmolDuration, Instant},
    wire::{HardwareAddress, IpCidr, IpListenEndpoint},
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{
    dns::{self, Resolver, Transport},
    error::StackError,
    packet::{self, FlowKey, Ingress, Refusal},
    plan::Addresses,
    shared::{Shared, Sockets},
    splice::{self, TcpStream},
    tun::{Tun, TunDevice},
};
use crate::connect::{ClusterNet, Conn, DialError};

/// Connections (dialing or open) at once; more SYNs are refused.
pub(crate) const MAX_FLOWS: usize = 1024;

/// DNS queries being answered at once; more are dropped (the client retries).
pub(crate) const MAX_DNS_QUERIES: usize = 128;

/// smoltcp's receive and send buffer of each connection: the window CMD may send into,
/// and what tether may queue towards it.
const TCP_BUFFER: usize = 256 * 1024;

/// Packets read from the device before the stack polls.
const READ_BUDGET: usize = 64;

/// A connection whose peer stopped acknowledging is aborted after this long.
const TCP_TIMEOUT: SmolDuration = SmolDuration::from_secs(120);

/// The first source port of the stack's connections into CMD's namespace (the IANA
/// dynamic range, so they never meet a port CMD's own connections are sent to).
const FIRST_PUBLISH_PORT: u16 = 49152;

/// A DNS-over-TCP client that sends nothing for this long is closed.
const DNS_TCP_IDLE: Duration = Duration::from_secs(30);

/// What the stack needs to know.
#[derive(Debug, Clone)]
pub(crate) struct StackConfig {
    pub(crate) addrs: Addresses,
    pub(crate) mtu: usize,
    /// The laptop's nameservers, for names the cluster does not know.
    pub(crate) upstreams: Vec<SocketAddr>,
}

/// A connection CMD opened.
enum Flow {
    /// The destination is being dialed; this is CMD's SYN, replayed on success.
    Dialing {
        syn: Vec<u8>,
    },
    Open(SocketHandle),
}

/// The end of a dial.
struct Dialed {
    key: FlowKey,
    result: Result<Box<dyn Conn>, Refusal>,
}

/// Connections to published ports accepted on the laptop and not yet handed to the stack.
pub(crate) const MAX_INBOUND_WAITING: usize = 64;

/// A connection accepted on the laptop for a published port of CMD's namespace.
pub(crate) struct Inbound {
    port: u16,
    conn: tokio::net::TcpStream,
}

/// Accepts the laptop's connections to a published `port` until `shutdown`, for the stack
/// to carry into CMD's namespace.
pub(crate) async fn publish(
    port: u16,
    listener: tokio::net::TcpListener,
    to_stack: mpsc::Sender<Inbound>,
    shutdown: CancellationToken,
) {
    while let Some((conn, _)) = crate::accept::next(&listener, &shutdown).await {
        if to_stack.send(Inbound { port, conn }).await.is_err() {
            return;
        }
    }
}

/// Runs the stack on `tun` until `shutdown`; connection tasks end with it. `inbound`
/// brings connections for published ports.
pub(crate) async fn serve<N: ClusterNet>(
    tun: Tun,
    config: StackConfig,
    net: N,
    inbound: mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
) -> Result<(), StackError> {
    let mut stack = Stack::new(tun, config, net, inbound);
    let result = stack.run(&shutdown).await;
    // Connections and DNS tasks end with the stack (their sockets are gone).
    stack.tasks.shutdown().await;
    result
}

struct Stack<N> {
    net: N,
    shared: Arc<Shared>,
    iface: Interface,
    tun: Tun,
    config: StackConfig,
    /// Packets read from `tun0`, for smoltcp's next poll.
    rx: VecDeque<Vec<u8>>,
    tx_buf: Vec<u8>,
    flows: HashMap<FlowKey, Flow>,
    keys: HashMap<SocketHandle, FlowKey>,
    /// Dial results. Unbounded, yet never more than [`MAX_FLOWS`] messages: one per flow
    /// that is dialing.
    dialed_tx: mpsc::UnboundedSender<Dialed>,
    dialed_rx: mpsc::UnboundedReceiver<Dialed>,
    /// Sockets whose handshake starts at the next poll, and what their task will run.
    starting: Vec<(SocketHandle, Starter)>,
    dns_udp: SocketHandle,
    dns_slots: Arc<Semaphore>,
    resolver: Resolver<N>,
    tasks: JoinSet<()>,
    inbound: mpsc::Receiver<Inbound>,
    /// The stack's next source port towards CMD, for published connections.
    next_port: u16,
}

/// What a new connection's task does.
enum Starter {
    Splice(Box<dyn Conn>),
    Dns,
}

impl<N: ClusterNet> Stack<N> {
    fn new(tun: Tun, config: StackConfig, net: N, inbound: mpsc::Receiver<Inbound>) -> Self {
        let shared = Shared::new();
        let mut rx = VecDeque::new();
        let mut tx_buf = Vec::new();
        let mut device = TunDevice {
            tun: &tun,
            rx: &mut rx,
            tx_buf: &mut tx_buf,
            mtu: config.mtu,
        };
        let mut iface_config = Config::new(HardwareAddress::Ip);
        // Seeds smoltcp's initial sequence numbers and ports: differ from run to run.
        iface_config.random_seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mut iface = Interface::new(iface_config, &mut device, Instant::now());
        let addrs = config.addrs;
        iface.update_ip_addrs(|ips| {
            // Two slots: smoltcp's default IFACE_MAX_ADDR_COUNT.
            let _ = ips.push(IpCidr::new(addrs.stack_v4.into(), addrs.prefix_v4));
            let _ = ips.push(IpCidr::new(addrs.stack_v6.into(), addrs.prefix_v6));
        });
        // "Any IP": packets to any address are ours when a route names one of our
        // addresses as the gateway.
        let _ = iface.routes_mut().add_default_ipv4_route(addrs.stack_v4);
        let _ = iface.routes_mut().add_default_ipv6_route(addrs.stack_v6);
        iface.set_any_ip(true);

        let mut dns = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 128 * 1024]),
        );
        // Cannot fail: the endpoint has a port and the socket is new.
        let _ = dns.bind(IpListenEndpoint {
            addr: Some(addrs.stack_v4.into()),
            port: 53,
        });
        let dns_udp = shared.lock().set.add(dns);

        let (dialed_tx, dialed_rx) = mpsc::unbounded_channel();
        let resolver = Resolver::new(net.clone(), config.upstreams.clone());
        Self {
            net,
            shared,
            iface,
            tun,
            config,
            rx,
            tx_buf,
            flows: HashMap::new(),
            keys: HashMap::new(),
            dialed_tx,
            dialed_rx,
            starting: Vec::new(),
            dns_udp,
            dns_slots: Arc::new(Semaphore::new(MAX_DNS_QUERIES)),
            resolver,
            tasks: JoinSet::new(),
            inbound,
            next_port: FIRST_PUBLISH_PORT,
        }
    }

    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), StackError> {
        let mut scratch = vec![0u8; self.config.mtu.max(2048) + 64];
        let mut incoming = Vec::with_capacity(READ_BUDGET);
        loop {
            // Dial results first: under a steady stream of packets the read arm below is
            // always ready, and new connections must not wait for a lull.
            while let Ok(dialed) = self.dialed_rx.try_recv() {
                self.on_dialed(dialed);
            }
            let delay = self.poll();
            while self.tasks.try_join_next().is_some() {}

            let sleep = tokio::time::sleep(delay.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                read = self.tun.read_some(&mut scratch, &mut incoming, READ_BUDGET) => {
                    read.map_err(StackError::Read)?;
                    for packet in incoming.drain(..) {
                        self.ingress(packet);
                    }
                }
                Some(dialed) = self.dialed_rx.recv() => self.on_dialed(dialed),
                Some(inbound) = self.inbound.recv() => self.connect_inbound(inbound),
                _ = self.shared.poll_requested() => {}
                _ = sleep => {}
            }
        }
    }

    /// One smoltcp poll, then what follows from it: DNS queries, sockets to drop, new
    /// connection tasks. Returns when smoltcp next needs a poll by itself.
    fn poll(&mut self) -> Option<Duration> {
        let shared = Arc::clone(&self.shared);
        let mut sockets = shared.lock();
        let mut device = TunDevice {
            tun: &self.tun,
            rx: &mut self.rx,
            tx_buf: &mut self.tx_buf,
            mtu: self.config.mtu,
        };
        let now = Instant::now();
        self.iface.poll(now, &mut device, &mut sockets.set);
        self.take_dns_queries(&mut sockets);
        self.collect(&mut sockets);
        let delay = self.iface.poll_delay(Instant::now(), &sockets.set);
        drop(sockets);
        // Outside the lock: a task dropped at once (a runtime shutting down) drops its
        // stream, which takes the lock.
        self.start_connections();
        delay.map(|d| Duration::from_micros(d.total_micros()))
    }

    /// Dispatches one packet from `tun0`.
    fn ingress(&mut self, packet: Vec<u8>) {
        match packet::classify(&packet) {
            Ingress::Drop => {}
            Ingress::Udp => self.rx.push_back(packet),
            Ingress::Tcp(key) => {
                // Nothing but a SYN can be meant for a connection still dialing.
                if !matches!(self.flows.get(&key), Some(Flow::Dialing { .. })) {
                    self.rx.push_back(packet);
                }
            }
            Ingress::Syn(key) => match self.flows.get(&key) {
                // A retransmission: the first SYN is replayed when the dial ends.
                Some(Flow::Dialing { .. }) => {}
                Some(Flow::Open(_)) => self.rx.push_back(packet),
                None => self.open(key, packet),
            },
        }
    }

    /// A SYN to a destination not seen before.
    fn open(&mut self, key: FlowKey, syn: Vec<u8>) {
        let addrs = self.config.addrs;
        let to_stack = key.dst.ip() == IpAddr::V4(addrs.stack_v4)
            || key.dst.ip() == IpAddr::V6(addrs.stack_v6);
        if self.flows.len() >= MAX_FLOWS {
            tracing::warn!(
                "the run namespace has {MAX_FLOWS} connections open; refusing {}",
                key.dst
            );
            self.refuse(&syn, Refusal::Refused);
            return;
        }
        if to_stack {
            if key.dst.port() == 53 {
                self.accept(key, syn, Starter::Dns);
            } else {
                self.refuse(&syn, Refusal::Refused);
            }
            return;
        }
        self.flows.insert(key, Flow::Dialing { syn });
        let net = self.net.clone();
        let dialed_tx = self.dialed_tx.clone();
        self.tasks.spawn(async move {
            let result = dial(&net, key.dst).await;
            let _ = dialed_tx.send(Dialed { key, result });
        });
    }

    fn on_dialed(&mut self, Dialed { key, result }: Dialed) {
        // Only a flow still dialing takes the result (the stack never drops one, but a key
        // reused after a reset must not be handed a stale dial).
        let syn = match self.flows.remove(&key) {
            Some(Flow::Dialing { syn }) => syn,
            Some(open) => {
                self.flows.insert(key, open);
                return;
            }
            None => return,
        };
        match result {
            Ok(conn) => self.accept(key, syn, Starter::Splice(conn)),
            Err(how) => self.refuse(&syn, how),
        }
    }

    /// Makes a socket listening on exactly `key.dst` and hands it CMD's SYN; its task
    /// starts after the poll that answers the SYN.
    fn accept(&mut self, key: FlowKey, syn: Vec<u8>, starter: Starter) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        // Interactive protocols (psql, redis) must not wait for a full segment.
        socket.set_nagle_enabled(false);
        socket.set_timeout(Some(TCP_TIMEOUT));
        let endpoint = IpListenEndpoint {
            addr: Some(key.dst.ip().into()),
            port: key.dst.port(),
        };
        if socket.listen(endpoint).is_err() {
            // Port 0: no connection can be made to it.
            self.refuse(&syn, Refusal::Refused);
            return;
        }
        let handle = self.shared.lock().set.add(socket);
        self.flows.insert(key, Flow::Open(handle));
        self.keys.insert(handle, key);
        self.rx.push_back(syn);
        self.starting.push((handle, starter));
    }

    /// Opens a connection from the stack to CMD's namespace for a published port; its task
    /// splices it with the laptop's connection once smoltcp has sent the SYN. A port CMD
    /// does not listen on resets, which ends the laptop's connection.
    fn connect_inbound(&mut self, Inbound { port, conn }: Inbound) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        socket.set_nagle_enabled(false);
        socket.set_timeout(Some(TCP_TIMEOUT));
        let local = self.next_port;
        self.next_port = if local == u16::MAX {
            FIRST_PUBLISH_PORT
        } else {
            local + 1
        };
        let addrs = self.config.addrs;
        let remote = (smoltcp::wire::IpAddress::from(addrs.ns_v4), port);
        let source = (smoltcp::wire::IpAddress::from(addrs.stack_v4), local);
        if let Err(e) = socket.connect(self.iface.context(), remote, source) {
            tracing::debug!(port, error = %e, "cannot open a published connection");
            return;
        }
        let handle = self.shared.lock().set.add(socket);
        self.starting
            .push((handle, Starter::Splice(Box::new(conn))));
    }

    fn refuse(&self, syn: &[u8], how: Refusal) {
        let router = match syn.first().map(|b| b >> 4) {
            Some(6) => IpAddr::V6(self.config.addrs.stack_v6),
            _ => IpAddr::V4(self.config.addrs.stack_v4),
        };
        if let Some(reply) = packet::refuse(syn, how, router) {
            self.tun.write(&reply);
        }
    }

    /// Spawns the tasks of the sockets whose SYN the last poll answered.
    fn start_connections(&mut self) {
        for (handle, starter) in self.starting.drain(..) {
            let stream = TcpStream::new(Arc::clone(&self.shared), handle);
            match starter {
                Starter::Splice(conn) => {
                    self.tasks.spawn(splice::splice(stream, conn));
                }
                Starter::Dns => {
                    let resolver = self.resolver.clone();
                    self.tasks.spawn(serve_dns_tcp(stream, resolver));
                }
            }
        }
    }

    /// Queries that arrived on the DNS socket get a task each, as far as slots allow.
    fn take_dns_queries(&mut self, sockets: &mut Sockets) {
        let dns_udp = self.dns_udp;
        let socket = sockets.set.get_mut::<udp::Socket>(dns_udp);
        while let Ok((query, meta)) = socket.recv() {
            let Ok(slot) = Arc::clone(&self.dns_slots).try_acquire_owned() else {
                tracing::debug!("too many DNS queries in flight; dropping one");
                continue;
            };
            let query = query.to_vec();
            let resolver = self.resolver.clone();
            let shared = Arc::clone(&self.shared);
            self.tasks.spawn(async move {
                if let Some(answer) = resolver.answer(&query, Transport::Udp).await {
                    let mut sockets = shared.lock();
                    let socket = sockets.set.get_mut::<udp::Socket>(dns_udp);
                    // A full send buffer drops the answer; the client asks again.
                    let _ = socket.send_slice(&answer, meta);
                    drop(sockets);
                    shared.wake_stack();
                }
                drop(slot);
            });
        }
    }

    /// Drops the sockets of ended connections once smoltcp is done with them, and resets
    /// sockets that a RST sent back to LISTEN (they would otherwise take the next SYN to
    /// the same destination).
    fn collect(&mut self, sockets: &mut Sockets) {
        // Every socket in `keys` has been polled with its SYN by now (sockets are made
        // between polls), so LISTEN means the handshake was reset.
        for &handle in self.keys.keys() {
            let socket = sockets.set.get_mut::<tcp::Socket>(handle);
            if socket.state() == State::Listen {
                socket.abort();
            }
        }
        let mut kept = Vec::new();
        for handle in std::mem::take(&mut sockets.released) {
            let state = sockets.set.get::<tcp::Socket>(handle).state();
            if matches!(state, State::Closed | State::TimeWait) {
                sockets.set.remove(handle);
                if let Some(key) = self.keys.remove(&handle) {
                    if let Entry::Occupied(flow) = self.flows.entry(key) {
                        if matches!(flow.get(), Flow::Open(h) if *h == handle) {
                            flow.remove();
                        }
                    }
                }
            } else {
                kept.push(handle);
            }
        }
        sockets.released = kept;
    }
}

/// Dials `dst`: through the cluster for its addresses, from the laptop otherwise.
async fn dial<N: ClusterNet>(net: &N, dst: SocketAddr) -> Result<Box<dyn Conn>, Refusal> {
    if net.is_cluster_addr(dst.ip()) {
        return net
            .dial(&dst.ip().to_string(), dst.port())
            .await
            .map_err(|e| {
                tracing::debug!(%dst, error = %e, "cluster dial failed");
                match e {
                    DialError::Refused(_) => Refusal::Refused,
                    DialError::NotFound(_) | DialError::Unreachable(_) => Refusal::HostUnreachable,
                    DialError::Disconnected(_) => Refusal::NetUnreachable,
                }
            });
    }
    match tokio::net::TcpStream::connect(dst).await {
        Ok(stream) => {
            // CMD's kernel already decided how to segment; do not delay it again.
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream))
        }
        Err(e) => {
            tracing::debug!(%dst, error = %e, "laptop dial failed");
            Err(match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Refusal::Refused,
                std::io::ErrorKind::NetworkUnreachable => Refusal::NetUnreachable,
                _ => Refusal::HostUnreachable,
            })
        }
    }
}

/// DNS over TCP on the stack's address (clients fall back to it after a truncated answer).
async fn serve_dns_tcp<N: ClusterNet>(mut stream: TcpStream, resolver: Resolver<N>) {
    loop {
        let query = match tokio::time::timeout(DNS_TCP_IDLE, dns::read_framed(&mut stream)).await {
            Ok(Ok(Some(query))) => query,
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(_)) => {
                stream.abort();
                return;
            }
        };
        if let Some(answer) = resolver.answer(&query, Transport::Tcp).await {
            if dns::write_framed(&mut stream, &answer).await.is_err() {
                stream.abort();
                return;
            }
        }
    }
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
}

/// The stack in-process: a datagram socketpair stands in for the TUN device (one read is
/// one packet, as with `IFF_NO_PI`), the test plays CMD's kernel with hand-made segments.
#[cfg(test)]
mod tests {
    use std::{
        os::{fd::OwnedFd, unix::net::UnixDatagram},
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use tokio::sync::Semaphore;

    use super::*;
    use crate::{
        connect::Lookup,
        run::{packet, plan},
    };

    /// A cluster whose dials wait for a permit of `gate`, then succeed or are refused.
    #[derive(Clone)]
    struct GatedNet {
        gate: Arc<Semaphore>,
        refuse: bool,
        dials: Arc<AtomicUsize>,
    }

    impl ClusterNet for GatedNet {
        async fn lookup(&self, _name: &str) -> Result<Lookup, DialError> {
            Ok(Lookup::NotCluster)
        }

        async fn dial(&self, host: &str, _port: u16) -> Result<Box<dyn Conn>, DialError> {
            self.dials.fetch_add(1, Ordering::Relaxed);
            let _permit = self.gate.acquire().await;
            if self.refuse {
                return Err(DialError::Refused(host.to_string()));
            }
            let (ours, _theirs) = tokio::io::duplex(1024);
            Ok(Box::new(ours))
        }

        fn is_cluster_addr(&self, _ip: IpAddr) -> bool {
            true
        }
    }

    struct Harness {
        cmd: tokio::net::UnixDatagram,
        shutdown: CancellationToken,
        net: GatedNet,
    }

    fn start(refuse: bool, open: bool) -> Harness {
        let (device, cmd) = UnixDatagram::pair().unwrap();
        let net = GatedNet {
            gate: Arc::new(Semaphore::new(if open { 1000 } else { 0 })),
            refuse,
            dials: Arc::default(),
        };
        let tun = Tun::new(OwnedFd::from(device)).unwrap();
        let config = StackConfig {
            addrs: plan::Addresses::default_plan(),
            mtu: plan::MTU,
            upstreams: Vec::new(),
        };
        let shutdown = CancellationToken::new();
        // No published ports: the sender goes at once.
        let (_, inbound) = mpsc::channel(1);
        tokio::spawn(serve(tun, config, net.clone(), inbound, shutdown.clone()));
        cmd.set_nonblocking(true).unwrap();
        Harness {
            cmd: tokio::net::UnixDatagram::from_std(cmd).unwrap(),
            shutdown,
            net,
        }
    }

    impl Harness {
        async fn reply(&self, within: Duration) -> Option<Vec<u8>> {
            let mut buf = vec![0u8; 70000];
            let n = tokio::time::timeout(within, self.cmd.recv(&mut buf))
                .await
                .ok()?
                .ok()?;
            buf.truncate(n);
            Some(buf)
        }
    }

    const CMD: &str = "169.254.77.2:40000";
    const DST: &str = "198.18.0.7:5432";

    #[tokio::test]
    async fn a_refused_dial_resets_the_syn_without_a_handshake() {
        let h = start(true, true);
        let (src, dst) = (CMD.parse().unwrap(), DST.parse().unwrap());
        h.cmd.send(&packet::syn(src, dst)).await.unwrap();
        let reply = h.reply(Duration::from_secs(2)).await.expect("a reply");
        let (from, to, [syn, ack, rst], ack_no) = packet::tcp_summary(&reply).unwrap();
        assert_eq!((from, to), (dst, src));
        assert_eq!((syn, ack, rst), (false, true, true));
        assert_eq!(ack_no, 1001);
        assert!(h.reply(Duration::from_millis(200)).await.is_none());
        h.shutdown.cancel();
    }

    #[tokio::test]
    async fn the_handshake_waits_for_the_dial_and_retransmits_are_not_dialed_again() {
        let h = start(false, false);
        let (src, dst) = (CMD.parse().unwrap(), DST.parse().unwrap());
        let syn = packet::syn(src, dst);
        h.cmd.send(&syn).await.unwrap();
        h.cmd.send(&syn).await.unwrap();
        assert!(
            h.reply(Duration::from_millis(300)).await.is_none(),
            "answered before the far end accepted"
        );
        assert_eq!(h.net.dials.load(Ordering::Relaxed), 1);
        h.net.gate.add_permits(1);
        let reply = h.reply(Duration::from_secs(2)).await.expect("a SYN-ACK");
        let (from, to, [syn, ack, rst], ack_no) = packet::tcp_summary(&reply).unwrap();
        // From the address CMD dialed, as if the destination answered.
        assert_eq!((from, to), (dst, src));
        assert_eq!((syn, ack, rst), (true, true, false));
        assert_eq!(ack_no, 1001);
        h.shutdown.cancel();
    }

    #[tokio::test]
    async fn a_connection_to_the_stack_itself_is_refused_unless_dns() {
        let h = start(false, true);
        let src = CMD.parse().unwrap();
        let stack: SocketAddr = "169.254.77.1:80".parse().unwrap();
        h.cmd.send(&packet::syn(src, stack)).await.unwrap();
        let reply = h.reply(Duration::from_secs(2)).await.unwrap();
        assert_eq!(packet::tcp_summary(&reply).unwrap().2, [false, true, true]);
        let dns: SocketAddr = "169.254.77.1:53".parse().unwrap();
        h.cmd.send(&packet::syn(src, dns)).await.unwrap();
        let reply = h.reply(Duration::from_secs(2)).await.unwrap();
        assert_eq!(packet::tcp_summary(&reply).unwrap().2, [true, true, false]);
        assert_eq!(h.net.dials.load(Ordering::Relaxed), 0);
        h.shutdown.cancel();
    }
}
