//! The connect agent's control port: laptops attach with the connect token (checked as
//! the traffic agent checks its own), then every stream they open is a `tcp:` dial or a
//! `dns:` lookup ([`Target`]). Any number of laptops may be attached: none takes anything
//! from another.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;

use super::{ConnectConfig, dial, resolve::ClusterDns};
use crate::{
    AttachError,
    control::hear_laptop,
    tunnel::{
        Incoming, LAPTOPS_TARGET, LaptopInfo, Side,
        target::{Target, line},
    },
};

/// The connect agent's shared state. Cheap to clone.
#[derive(Clone)]
pub struct ConnectAgent {
    config: Arc<ConnectConfig>,
    dns: ClusterDns,
    /// Who is attached, for `tether:laptops`.
    laptops: Arc<Mutex<Vec<(u64, String, Instant)>>>,
}

impl ConnectAgent {
    pub fn new(config: ConnectConfig, dns: ClusterDns) -> ConnectAgent {
        ConnectAgent {
            config: Arc::new(config),
            dns,
            laptops: Arc::default(),
        }
    }

    /// Accepts laptops on the control listener until `shutdown`.
    pub async fn serve_control(&self, listener: TcpListener, shutdown: CancellationToken) {
        let mut next = 0u64;
        while let Some((conn, _)) = crate::accept::next(&listener, &shutdown).await {
            next += 1;
            let (agent, id) = (self.clone(), next);
            tokio::spawn(async move {
                match agent.attach(conn, id).await {
                    Ok(reason) => tracing::info!(%reason, "a laptop's session ended"),
                    Err(e) => tracing::warn!("a laptop could not attach: {e}"),
                }
            });
        }
    }

    /// Runs one laptop's session until it ends.
    pub async fn attach<IO>(&self, io: IO, id: u64) -> Result<String, AttachError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let reinstall = "run `tether uninstall --connect`, then `tether connect` again";
        let (handshake, peer) = hear_laptop(io, self.config.token.as_deref(), reinstall).await?;
        let mut session = handshake.welcome(Side::Acceptor, self.config.session);
        self.with_laptops(|l| l.push((id, peer.name.clone(), Instant::now())));
        tracing::info!(laptop = %peer.name, "laptop connected");
        while let Some(incoming) = session.accept().await {
            self.answer(incoming);
        }
        self.with_laptops(|l| l.retain(|(i, _, _)| *i != id));
        Ok(session.close_reason())
    }

    fn with_laptops<T>(&self, f: impl FnOnce(&mut Vec<(u64, String, Instant)>) -> T) -> Option<T> {
        self.laptops.lock().ok().map(|mut l| f(&mut l))
    }

    /// Answers one stream; an unknown target is dropped, which resets it.
    fn answer(&self, incoming: Incoming) {
        let Incoming { target, mut stream } = incoming;
        let agent = self.clone();
        if target == LAPTOPS_TARGET {
            let laptops: Vec<LaptopInfo> = self
                .with_laptops(|l| {
                    l.iter()
                        .map(|(_, name, since)| LaptopInfo {
                            name: name.clone(),
                            attached_ms: since.elapsed().as_millis() as u64,
                            ..LaptopInfo::default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            tokio::spawn(async move {
                let _ = stream.write_all(&line(&laptops)).await;
                let _ = stream.shutdown().await;
            });
            return;
        }
        match Target::parse(&target) {
            Some(Target::Tcp { host, port }) => {
                tokio::spawn(async move {
                    let timeout = agent.config.dial_timeout;
                    match dial::serve(stream, &agent.dns, &host, port, timeout).await {
                        Ok((up, down)) => tracing::debug!(%host, port, up, down, "connection done"),
                        Err(e) => tracing::debug!(%host, port, "connection ended: {e}"),
                    }
                });
            }
            Some(Target::Lookup { namespace, name }) => {
                tokio::spawn(async move {
                    let answer = agent.dns.lookup(&namespace, &name).await;
                    let _ = stream.write_all(&line(&answer)).await;
                    let _ = stream.shutdown().await;
                });
            }
            None => tracing::debug!(%target, "a stream to an unknown target was reset"),
        }
    }
}
