//! The control port: laptops attach here (through the API server's port-forward, since the
//! port listens on the pod's 127.0.0.1 only). Each attach is checked before the agent says
//! anything: its Hello must parse, come from a laptop, carry the attach token, and ask for
//! a route no other laptop holds ([`Registry::join`](super::registry::Registry::join)).
//! Then the laptop's session runs until it ends, and only its own route goes away.

use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;

use super::{error::AttachError, server::Agent};
use crate::tunnel::{Handshake, HelloMeta, Incoming, LAPTOPS_TARGET, Role, Session, Side};

/// What a laptop with the wrong token, or none, is told.
pub const WRONG_TOKEN: &str = "wrong or missing attach token";

impl Agent {
    /// Accepts laptops on the control listener until `shutdown`.
    pub async fn serve_control(&self, listener: TcpListener, shutdown: CancellationToken) {
        while let Some((conn, _)) = crate::accept::next(&listener, &shutdown).await {
            let agent = self.clone();
            tokio::spawn(async move {
                match agent.attach(conn).await {
                    Ok(reason) => tracing::info!(%reason, "a laptop's session ended"),
                    Err(e) => tracing::warn!("a laptop could not attach: {e}"),
                }
            });
        }
    }

    /// Runs one laptop's session on `io` until it ends; returns why it ended, or why the
    /// laptop was refused (the laptop was told the same in a GoAway).
    pub async fn attach<IO>(&self, io: IO) -> Result<String, AttachError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (handshake, peer) = hear_laptop(
            io,
            self.config.token.as_deref(),
            "reinstall it with `tether intercept`",
        )
        .await?;
        let membership = match self.registry.join(&peer.name, &peer.filter) {
            Ok(m) => m,
            Err(held) => {
                let reason = held.message(&self.config.service);
                handshake.refuse(&reason).await;
                return Err(AttachError::Refused(reason));
            }
        };
        let mut session = handshake.welcome(Side::Acceptor, self.config.session);
        membership.activate(session.opener());
        tracing::info!(laptop = %peer.name, filter = ?peer.filter, "laptop attached");
        while let Some(incoming) = session.accept().await {
            self.answer(incoming);
        }
        let reason = session.close_reason();
        drop(membership);
        tracing::info!(laptop = %peer.name, %reason, "laptop detached: its traffic goes back");
        Ok(reason)
    }

    /// Answers a stream the laptop opened: the laptops query; anything else is refused
    /// (version 1 agents reach nothing for a laptop), which resets it.
    fn answer(&self, incoming: Incoming) {
        if incoming.target != LAPTOPS_TARGET {
            return;
        }
        let laptops = self.registry.laptops();
        tokio::spawn(async move {
            let mut stream = incoming.stream;
            // Serialising plain strings and numbers cannot fail.
            let json = serde_json::to_vec(&laptops).unwrap_or_default();
            let _ = stream.write_all(&json).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Reads a peer's Hello and refuses it (with the reason, in a GoAway) unless it is a
/// laptop holding the token `expected`; `reinstall` tells how to give a token-less agent
/// one. What comes next (the route, the welcome) is the caller's.
pub(crate) async fn hear_laptop<IO>(
    io: IO,
    expected: Option<&str>,
    reinstall: &str,
) -> Result<(Handshake<IO>, HelloMeta), AttachError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let meta = HelloMeta {
        role: Role::Agent,
        name: std::env::var("HOSTNAME").unwrap_or_default(),
        ..HelloMeta::default()
    };
    let handshake = Session::hear(io, meta).await?;
    let peer = handshake.peer().clone();
    if let Some(reason) = refusal(&peer, expected, reinstall) {
        handshake.refuse(&reason).await;
        return Err(AttachError::Refused(reason));
    }
    Ok((handshake, peer))
}

/// Why a laptop saying `peer` may not attach to an agent holding `expected`, if it may
/// not; `reinstall` tells how to give a token-less agent one.
fn refusal(peer: &HelloMeta, expected: Option<&str>, reinstall: &str) -> Option<String> {
    if peer.role != Role::Laptop {
        return Some("only a laptop may attach".to_owned());
    }
    match expected {
        None => Some(format!(
            "{WRONG_TOKEN}: this agent has none configured ({} is unset); {reinstall}",
            super::args::TOKEN_ENV
        )),
        Some(expected) if !same_token(expected, &peer.token) => Some(WRONG_TOKEN.to_owned()),
        Some(_) => None,
    }
}

/// Compares tokens in time that depends on neither their contents nor their lengths: the
/// digests are compared whole, so a guesser learns nothing from how long a refusal took.
fn same_token(expected: &str, given: &str) -> bool {
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cret", "s3creT"));
        assert!(!same_token("s3cret", ""));
        assert!(!same_token("s3cret", "s3cret "));
    }
}
