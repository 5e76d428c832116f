//! `tether agent`: the traffic agent that runs as a sidecar next to the app container.
//!
//! Connections arrive on the agent port (the Service's targetPort points here). With no
//! laptop attached each goes to the app over the pod's loopback, unchanged. A laptop
//! attaches through the control port, which listens on the pod's 127.0.0.1 only: the API
//! server's port-forward arrives there, other pods cannot. While a laptop is attached,
//! connections (all traffic), or only HTTP requests carrying the laptop's headers
//! (personal intercept), go through the [`tunnel`](crate::tunnel) to it. When the laptop
//! disconnects or misses heartbeats, new traffic goes back to the app at once.
//!
//! Routing decisions: all-traffic intercepts decide per connection (any TCP protocol
//! works); header intercepts parse HTTP/1.1 and decide per request, so one keep-alive
//! connection can carry both kinds.
//!
//! This module depends on `tunnel` and nothing of the laptop side (no TUI, no bollard).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Request, Response, StatusCode, body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::sync::CancellationToken;

use crate::tunnel::{Filter, Heartbeat, HelloMeta, Opener, Role, Session, Side, TunnelError};

pub mod router;
pub mod routes;

/// The agent's command line (`tether agent ARGS`), as the sidecar's args give it.
#[derive(Debug, Parser)]
#[command(name = "tether agent", no_binary_name = true)]
pub struct AgentArgs {
    /// The app container's port, reached over the pod's loopback.
    #[arg(long)]
    pub app_port: u16,
    /// The port the Service's targetPort points at.
    #[arg(long, default_value_t = 9900)]
    pub listen: u16,
    /// The control port for laptops; bound on 127.0.0.1 only.
    #[arg(long, default_value_t = 9901)]
    pub control: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("bad agent arguments: {0}")]
    Args(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The laptop currently attached.
struct Attachment {
    /// Tells attachments apart, so a replaced one does not detach its successor.
    serial: u64,
    opener: Opener,
    filter: Filter,
    name: String,
}

/// The agent's shared state: where the app is and who is attached. Cheap to clone.
#[derive(Clone)]
pub struct Agent {
    app: SocketAddr,
    heartbeat: Heartbeat,
    attached_tx: Arc<watch::Sender<Option<Arc<Attachment>>>>,
}

impl Agent {
    pub fn new(app: SocketAddr, heartbeat: Heartbeat) -> Agent {
        Agent {
            app,
            heartbeat,
            attached_tx: Arc::new(watch::channel(None).0),
        }
    }

    /// Whether a laptop is attached now, as a watch for logs and tests.
    pub fn attached(&self) -> watch::Receiver<bool> {
        let mut rx = self.attached_tx.subscribe();
        let (tx, out) = watch::channel(rx.borrow().is_some());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let now = rx.borrow().is_some();
                if tx.send(now).is_err() {
                    return;
                }
            }
        });
        out
    }

    fn current(&self) -> Option<Arc<Attachment>> {
        self.attached_tx
            .borrow()
            .clone()
            .filter(|a| !a.opener.is_closed())
    }

    /// Runs one laptop's session on `io` until it ends. A newer laptop replaces an older
    /// one: the last to attach is the one developing.
    pub async fn attach<IO>(&self, io: IO) -> Result<String, TunnelError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let meta = HelloMeta {
            role: Role::Agent,
            name: std::env::var("HOSTNAME").unwrap_or_default(),
            filter: Filter::default(),
            ..HelloMeta::default()
        };
        let mut session = Session::start(io, Side::Acceptor, meta, self.heartbeat).await?;
        if session.peer().role != Role::Laptop {
            session.go_away("only a laptop may attach").await;
            return Err(TunnelError::Protocol("the peer is not a laptop".into()));
        }
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let attachment = Arc::new(Attachment {
            serial,
            opener: session.opener(),
            filter: session.peer().filter.clone(),
            name: session.peer().name.clone(),
        });
        tracing::info!(laptop = %attachment.name, filter = ?attachment.filter, "laptop attached");
        self.attached_tx.send_replace(Some(attachment.clone()));
        // Version 1 agents accept no streams from the laptop; refuse them politely.
        while let Some(refused) = session.accept().await {
            drop(refused);
        }
        let reason = session.close_reason();
        self.attached_tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.serial == serial) {
                *cur = None;
                true
            } else {
                false
            }
        });
        tracing::info!(laptop = %attachment.name, %reason, "laptop detached: traffic goes to the app");
        Ok(reason)
    }

    /// Accepts laptops on the control listener until `shutdown`.
    pub async fn serve_control(&self, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.cancelled() => return,
            };
            let Ok((conn, _)) = accepted else {
                // Out of file descriptors and the like: breathe, then go on.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = conn.set_nodelay(true);
            let agent = self.clone();
            tokio::spawn(async move {
                if let Err(e) = agent.attach(conn).await {
                    tracing::warn!("a laptop could not attach: {e}");
                }
            });
        }
    }

    /// Accepts traffic on the agent port until `shutdown`.
    pub async fn serve_traffic(&self, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.cancelled() => return,
            };
            let Ok((conn, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = conn.set_nodelay(true);
            let agent = self.clone();
            tokio::spawn(async move { agent.route(conn).await });
        }
    }

    /// Sends one connection where it belongs now.
    async fn route(&self, mut conn: TcpStream) {
        match self.current() {
            Some(a) if a.filter.is_all() => {
                if let Ok(mut stream) = a.opener.open("") {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
                    return;
                }
                // The laptop left between the check and the open: the app takes it.
                self.to_app(conn).await;
            }
            Some(_) => self.serve_http(conn).await,
            None => self.to_app(conn).await,
        }
    }

    async fn to_app(&self, mut conn: TcpStream) {
        match TcpStream::connect(self.app).await {
            Ok(mut app) => {
                let _ = app.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut app).await;
            }
            Err(e) => tracing::warn!("cannot reach the app at {}: {e}", self.app),
        }
    }

    /// Serves HTTP/1.1 on `conn`, choosing laptop or app for each request.
    async fn serve_http(&self, conn: TcpStream) {
        let upstreams = Arc::new(tokio::sync::Mutex::new(Upstreams::default()));
        let agent = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (agent, upstreams) = (agent.clone(), upstreams.clone());
            async move { Ok::<_, std::convert::Infallible>(agent.forward(req, &upstreams).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(conn), service)
            .with_upgrades()
            .await;
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        upstreams: &tokio::sync::Mutex<Upstreams>,
    ) -> Response<Body> {
        let laptop = self.current().filter(|a| matches(&a.filter, req.headers()));
        let mut up = upstreams.lock().await;
        let sender = match &laptop {
            Some(a) => up.laptop(a).await,
            None => up.app(self.app).await,
        };
        let result = match sender {
            Ok(s) => s.send_request(req).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match result {
            Ok(resp) => resp.map(|b| b.boxed()),
            Err(e) => {
                // Drop the broken connection so the next request makes a new one.
                if laptop.is_some() {
                    up.laptop = None;
                } else {
                    up.app = None;
                }
                let to = if laptop.is_some() {
                    "the laptop"
                } else {
                    "the app"
                };
                bad_gateway(&format!("tether agent: cannot reach {to}: {e}\n"))
            }
        }
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn bad_gateway(text: &str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(text.to_owned()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}

/// Whether the request carries every header of the filter.
fn matches(filter: &Filter, headers: &http::HeaderMap) -> bool {
    filter.headers.iter().all(|(name, value)| {
        headers
            .get_all(name.as_str())
            .iter()
            .any(|v| v.as_bytes() == value.as_bytes())
    })
}

/// One downstream connection's upstream connections, made when first needed.
#[derive(Default)]
struct Upstreams {
    app: Option<SendRequest<Incoming>>,
    /// With the attachment serial it belongs to: a new laptop gets a new connection.
    laptop: Option<(u64, SendRequest<Incoming>)>,
}

impl Upstreams {
    async fn app(&mut self, addr: SocketAddr) -> Result<&mut SendRequest<Incoming>, String> {
        if self.app.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            self.app = Some(handshake(tcp).await?);
        }
        let s = self.app.as_mut().ok_or("no connection")?;
        s.ready().await.map_err(|e| e.to_string())?;
        Ok(s)
    }

    async fn laptop(&mut self, a: &Attachment) -> Result<&mut SendRequest<Incoming>, String> {
        let stale = self
            .laptop
            .as_ref()
            .is_none_or(|(serial, s)| *serial != a.serial || s.is_closed());
        if stale {
            let stream = a.opener.open("").map_err(|e| e.to_string())?;
            self.laptop = Some((a.serial, handshake(stream).await?));
        }
        let (_, s) = self.laptop.as_mut().ok_or("no connection")?;
        s.ready().await.map_err(|e| e.to_string())?;
        Ok(s)
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<Incoming>, String>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// `tether agent ARGS`: binds both ports and serves until SIGTERM or SIGINT.
pub async fn run(args: &[String]) -> Result<(), AgentError> {
    let args = AgentArgs::try_parse_from(args).map_err(|e| AgentError::Args(e.to_string()))?;
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Bind { addr, source })
    };
    let traffic = bind(SocketAddr::from(([0, 0, 0, 0], args.listen))).await?;
    let control = bind(SocketAddr::from(([127, 0, 0, 1], args.control))).await?;
    let agent = Agent::new(
        SocketAddr::from(([127, 0, 0, 1], args.app_port)),
        Heartbeat::default(),
    );
    let shutdown = CancellationToken::new();
    tracing::info!(
        "tether agent {}: traffic on :{} → app :{}, laptops on 127.0.0.1:{}",
        env!("CARGO_PKG_VERSION"),
        args.listen,
        args.app_port,
        args.control
    );
    tokio::spawn({
        let (agent, shutdown) = (agent.clone(), shutdown.clone());
        async move { agent.serve_control(control, shutdown).await }
    });
    tokio::spawn({
        let (agent, shutdown) = (agent.clone(), shutdown.clone());
        async move { agent.serve_traffic(traffic, shutdown).await }
    });
    wait_for_signal().await;
    shutdown.cancel();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests;
