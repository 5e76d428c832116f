//! [`Supervisor`]: the laptop's end of a live-update supervisor's control port. The byte
//! stream comes from the caller (a port-forward to [`CONTROL_PORT`](super::wire::CONTROL_PORT),
//! or a duplex pipe in tests); each request is one stream of the session, as
//! [`wire`](super::wire) lays down, so requests may run side by side.

use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::{
    error::LiveError,
    wire::{self, APPLY_TARGET, Applied, Failure, MAX_LINE, Reply, STATE_TARGET, State, Update},
};
use crate::tunnel::{
    Heartbeat, HelloMeta, Opener, Role, Session, Side, TunnelError, session::Settings,
};

/// An attached supervisor. Dropping it ends the session.
pub struct Supervisor {
    session: Session,
    opener: Opener,
}

impl Supervisor {
    /// Says hello over `io` with `token`; a supervisor that refuses says why.
    pub async fn attach<IO>(io: IO, token: &str) -> Result<Supervisor, LiveError>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let meta = HelloMeta {
            role: Role::Laptop,
            name: crate::intercept::attach::whoami(),
            token: token.to_owned(),
            ..HelloMeta::default()
        };
        let settings = Settings {
            heartbeat: Heartbeat::default(),
            ..Settings::default()
        };
        let session = match Session::start_with(io, Side::Dialer, meta, settings).await {
            Ok(s) => s,
            Err(TunnelError::GoAway(reason)) => return Err(LiveError::Refused { reason }),
            Err(e) => return Err(LiveError::Attach(e)),
        };
        let opener = session.opener();
        Ok(Supervisor { session, opener })
    }

    /// What the container has now: the synced files, the app's process.
    pub async fn state(&self) -> Result<State, LiveError> {
        let stream = self.open(STATE_TARGET)?;
        let (rd, _wr) = tokio::io::split(stream);
        // The write half is kept until the reply is read: dropping both ends the stream,
        // which tells the supervisor the reply arrived.
        self.reply(STATE_TARGET, &mut BufReader::new(rd)).await
    }

    /// Sends `update` and waits for the supervisor to apply it (files, steps, restart,
    /// ports). The wait is unbounded here: bound it at the call site.
    pub async fn apply(&self, update: &Update) -> Result<Applied, LiveError> {
        let stream = self.open(APPLY_TARGET)?;
        let (rd, mut wr) = tokio::io::split(stream);
        let mut rd = BufReader::new(rd);
        let send = async {
            wr.write_all(&wire::line(&update.header())).await?;
            for file in &update.files {
                wr.write_all(&file.content).await?;
            }
            wr.flush().await
        };
        let reply = self.reply(APPLY_TARGET, &mut rd);
        tokio::pin!(reply);
        // The supervisor may answer before it has read everything (a target it cannot
        // write): then the answer ends the sending.
        tokio::select! {
            r = &mut reply => return r,
            sent = send => {
                if let Err(source) = sent {
                    // A failed send still may have an answer saying why.
                    return match reply.await {
                        Err(LiveError::NoReply { .. }) => {
                            Err(LiveError::Io { target: APPLY_TARGET, source })
                        }
                        other => other,
                    };
                }
            }
        }
        reply.await
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.opener.is_closed()
    }

    /// Resolves when the session ends, with the reason.
    pub async fn closed(&self) -> String {
        self.session.closed().await
    }

    fn open(&self, target: &'static str) -> Result<tokio::io::DuplexStream, LiveError> {
        self.opener.open(target).map_err(|e| match e {
            TunnelError::Closed => LiveError::Closed {
                reason: self.session.close_reason(),
            },
            e => LiveError::Open(e),
        })
    }

    /// Reads the one reply line of a `target` stream.
    async fn reply<T, R>(&self, target: &'static str, rd: &mut R) -> Result<T, LiveError>
    where
        T: DeserializeOwned,
        R: tokio::io::AsyncBufRead + Unpin,
    {
        let line = match wire::read_line(rd, MAX_LINE).await {
            Ok(line) => line,
            Err(wire::LineError::Eof) if self.is_closed() => {
                return Err(LiveError::Closed {
                    reason: self.session.close_reason(),
                });
            }
            Err(wire::LineError::Eof) => return Err(LiveError::NoReply { target }),
            Err(wire::LineError::TooLong(max)) => {
                return Err(LiveError::Supervisor {
                    reason: format!("its answer to `{target}` is longer than {max} bytes"),
                });
            }
            Err(wire::LineError::Io(source)) => return Err(LiveError::Io { target, source }),
        };
        match serde_json::from_slice::<Reply<T>>(&line) {
            Ok(Reply::Ok(value)) => Ok(value),
            Ok(Reply::Failed(failure)) => Err(failure.into()),
            Err(source) => {
                Err(unknown_failure(&line).unwrap_or(LiveError::BadReply { target, source }))
            }
        }
    }
}

/// A failure of a kind this side does not know (a newer supervisor), reported as its JSON.
fn unknown_failure(line: &[u8]) -> Option<LiveError> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let failed = value.get("failed")?;
    Some(LiveError::Supervisor {
        reason: failed.to_string(),
    })
}

impl From<Failure> for LiveError {
    fn from(failure: Failure) -> LiveError {
        match failure {
            Failure::NotWritable { path, reason } => LiveError::NotWritable { path, reason },
            Failure::RunFailed { argv, code, output } => {
                LiveError::RunFailed { argv, code, output }
            }
            Failure::ChildExited { code } => LiveError::ChildExited { code },
            Failure::NotReady { ports, after } => LiveError::NotReady { ports, after },
            Failure::BadRequest { reason } => LiveError::Rejected { reason },
            Failure::Failed { reason } => LiveError::Supervisor { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_supervisor_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Supervisor>();
    }

    #[test]
    fn an_unknown_failure_kind_is_reported_with_its_json() {
        let line = br#"{"failed":{"kind":"out_of_space","free":0}}"#;
        assert!(serde_json::from_slice::<Reply<State>>(line).is_err());
        match unknown_failure(line) {
            Some(LiveError::Supervisor { reason }) => {
                assert!(reason.contains("out_of_space"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(unknown_failure(br#"{"ok":3}"#).is_none());
    }
}
