//! The agent port: every connection callers make to the Service. With no laptop attached
//! each goes to the app over the pod's loopback, unchanged. With only an all-traffic laptop
//! attached, each connection goes whole through its tunnel (any TCP protocol works). With
//! a header laptop attached, connections are parsed as HTTP/1.1 and each request goes to
//! the laptop whose headers it carries, else to the all-traffic laptop or the app, so one
//! keep-alive connection can carry all kinds. Routing reads [`Routes`] afresh for every
//! connection and request, so a laptop that leaves loses its traffic at once.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Request, Response, StatusCode, body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

use super::{routes::Routes, server::Agent};
use crate::tunnel::Opener;

impl Agent {
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
        if self.registry.any_header_laptop() {
            return self.serve_http(conn).await;
        }
        if let Some(opener) = self.registry.all_traffic() {
            if let Ok(mut stream) = opener.open("") {
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
                return;
            }
            // The laptop left between the check and the open: the app takes it.
        }
        self.to_app(conn).await;
    }

    async fn to_app(&self, mut conn: TcpStream) {
        let app = self.config.app;
        match TcpStream::connect(app).await {
            Ok(mut upstream) => {
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
            }
            Err(e) => tracing::warn!("cannot reach the app at {app}: {e}"),
        }
    }

    /// Serves HTTP/1.1 on `conn`, choosing a laptop or the app for each request.
    async fn serve_http(&self, conn: TcpStream) {
        let upstreams = Arc::new(tokio::sync::Mutex::new(Upstreams::default()));
        let agent = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (agent, upstreams) = (agent.clone(), upstreams.clone());
            async move { Ok::<_, Infallible>(agent.forward(req, &upstreams).await) }
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
        let laptop = self
            .registry
            .laptop_for(req.headers())
            .or_else(|| self.registry.all_traffic());
        let mut up = upstreams.lock().await;
        let sender = match &laptop {
            Some(opener) => up.laptop(opener).await,
            None => up.app(self.config.app).await,
        };
        let result = match sender {
            Ok(s) => s.send_request(req).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match result {
            Ok(resp) => resp.map(|b| b.boxed()),
            Err(e) => {
                // Drop the broken connection so the next request makes a new one.
                match &laptop {
                    Some(opener) => up.laptops.retain(|(o, _)| !o.same_session(opener)),
                    None => up.app = None,
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

/// One downstream connection's upstream connections, made when first needed.
#[derive(Default)]
struct Upstreams {
    app: Option<SendRequest<Incoming>>,
    /// One per laptop session this connection's requests went to.
    laptops: Vec<(Opener, SendRequest<Incoming>)>,
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

    async fn laptop(&mut self, opener: &Opener) -> Result<&mut SendRequest<Incoming>, String> {
        // Connections to laptops that left are of no more use.
        self.laptops
            .retain(|(o, s)| !o.is_closed() && !s.is_closed());
        let at = match self
            .laptops
            .iter()
            .position(|(o, _)| o.same_session(opener))
        {
            Some(at) => at,
            None => {
                let stream = opener.open("").map_err(|e| e.to_string())?;
                self.laptops
                    .push((opener.clone(), handshake(stream).await?));
                self.laptops.len() - 1
            }
        };
        let (_, s) = &mut self.laptops[at];
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
