//! [`Supervision`]: the supervisor's shared state, and its control port. Laptops attach
//! with the live token (checked as the traffic agent checks its own); then every stream
//! they open is a `live:state` or `live:apply` request ([`crate::wire`]). Updates
//! run one at a time (the store's lock); the state is read from watches, so it answers
//! also while an update waits for its ports.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::{Mutex, watch},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    apply,
    args::SuperviseConfig,
    child::{ChildSpec, ChildStatus, Keeper, Restarts},
    error::{StoreError, SuperviseError},
    program::Program,
    reaper::Reaper,
    store::{Manifest, Store},
};
use crate::{
    AttachError,
    control::hear_laptop,
    tunnel::{HelloMeta, Incoming, Role, Session, Side},
    wire::{self, APPLY_TARGET, Reply, STATE_TARGET, State, TOKEN_ENV},
};

/// How long a reply waits for the laptop to end the stream (it does once it has read the
/// reply): only a supervisor about to exit waits for that.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// What the supervisor shares between the control port and the updates. Cheap to clone.
#[derive(Clone)]
pub struct Supervision {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub token: Option<String>,
    pub config: SuperviseConfig,
    /// The one writer of the state directory; held for a whole update, so updates queue.
    pub store: Mutex<Store>,
    pub files_rx: watch::Receiver<Manifest>,
    pub child_rx: watch::Receiver<ChildStatus>,
    pub restarts: Restarts,
    pub program: Program,
    pub reaper: Reaper,
    /// Every request being answered, so a supervisor about to exit can finish them.
    pub tasks: TaskTracker,
}

/// What starting did, for the supervisor's first line.
#[derive(Debug)]
pub struct Started {
    /// Stored files written back into place (or, the program, run from the store).
    pub replayed: usize,
    /// The app runs from its stored program.
    pub stored_program: bool,
    pub pid: u32,
}

impl Supervision {
    /// Opens the state directory, writes the stored files back into place and starts the
    /// app. The [`Keeper`] owns the app: run it, and exit with what it returns.
    pub fn start(
        config: SuperviseConfig,
        reaper: Reaper,
    ) -> Result<(Supervision, Keeper, Started), SuperviseError> {
        let state_error = |source| SuperviseError::State {
            dir: config.state.clone(),
            source,
        };
        let (mut store, warning) = Store::open(&config.state).map_err(|e| match e {
            StoreError::Io { source, .. } | StoreError::NotWritable { source, .. } => {
                state_error(source)
            }
            other => state_error(std::io::Error::other(other.to_string())),
        })?;
        if let Some(warning) = warning {
            eprintln!("tether supervise: {warning}");
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
        let argv0 = config.argv.first().cloned().unwrap_or_default();
        let program = Program::resolve(&argv0, config.env_var("PATH").map(|p| p.as_os_str()), &cwd);
        let replayed = store.replay(&program);
        for (path, e) in &replayed.failed {
            eprintln!(
                "tether supervise: cannot write the synced {path} back: {}",
                chain(e)
            );
        }
        let spec = ChildSpec {
            program: program.clone(),
            argv: config.argv.clone(),
            env: config.env.clone(),
            grace: config.grace,
        };
        let (keeper, restarts, child_rx) = Keeper::start(spec, store.exec(), reaper.clone())?;
        let started = Started {
            replayed: replayed.files,
            stored_program: store.exec().is_some(),
            pid: keeper.pid(),
        };
        if config.token.is_none() {
            eprintln!("tether supervise: {TOKEN_ENV} is unset: every laptop will be refused");
        }
        let inner = Inner {
            token: config.token.clone(),
            files_rx: store.watch(),
            store: Mutex::new(store),
            child_rx,
            restarts,
            program,
            reaper,
            config,
            tasks: TaskTracker::new(),
        };
        let supervision = Supervision {
            inner: Arc::new(inner),
        };
        Ok((supervision, keeper, started))
    }

    /// Accepts laptops on `listener` until `shutdown`.
    pub async fn serve(&self, listener: TcpListener, shutdown: CancellationToken) {
        while let Some((conn, _)) = crate::accept::next(&listener, &shutdown).await {
            let supervision = self.clone();
            tokio::spawn(async move {
                if let Err(e) = supervision.attach(conn).await {
                    eprintln!("tether supervise: a laptop could not attach: {e}");
                }
            });
        }
    }

    /// Runs one laptop's session on `io` until it ends; returns why it ended, or why the
    /// laptop was refused (it was told the same in a GoAway).
    pub async fn attach<IO>(&self, io: IO) -> Result<String, AttachError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let hint = "redeploy with live update to give the supervisor a token";
        let (handshake, _) = match &self.inner.token {
            Some(token) => hear_laptop(io, Some(token), hint).await?,
            // The shared check would name the traffic agent's variable.
            None => {
                let meta = HelloMeta {
                    role: Role::Agent,
                    name: std::env::var("HOSTNAME").unwrap_or_default(),
                    ..HelloMeta::default()
                };
                let handshake = Session::hear(io, meta).await?;
                let reason = format!(
                    "{}: this supervisor has none configured ({TOKEN_ENV} is unset); {hint}",
                    crate::control::WRONG_TOKEN
                );
                handshake.refuse(&reason).await;
                return Err(AttachError::Refused(reason));
            }
        };
        let mut session = handshake.welcome(Side::Acceptor, self.inner.config.session);
        while let Some(incoming) = session.accept().await {
            self.answer(incoming);
        }
        Ok(session.close_reason())
    }

    /// What the container has now.
    pub fn state(&self) -> State {
        let files = self.inner.files_rx.borrow();
        let child = self.inner.child_rx.borrow();
        State {
            generation: files.generation,
            files: files
                .files
                .iter()
                .map(|(path, e)| (path.clone(), e.sha256.clone()))
                .collect(),
            child_pid: child.pid,
            restarts: child.restarts,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// Waits (at most `limit`) for the requests being answered: the supervisor is about to
    /// exit, and an update that saw the app exit should say so first.
    pub async fn finish(&self, limit: Duration) {
        self.inner.tasks.close();
        let _ = tokio::time::timeout(limit, self.inner.tasks.wait()).await;
    }

    /// Answers one stream; an unknown target is dropped, which resets it (the laptop reads
    /// that as an older supervisor).
    fn answer(&self, incoming: Incoming) {
        let Incoming { target, stream } = incoming;
        let supervision = self.clone();
        match target.as_str() {
            STATE_TARGET => {
                self.inner.tasks.spawn(async move {
                    let state = supervision.state();
                    let (rd, wr) = tokio::io::split(stream);
                    send(rd, wr, &Reply::Ok(state)).await;
                });
            }
            APPLY_TARGET => {
                self.inner.tasks.spawn(async move {
                    let (rd, wr) = tokio::io::split(stream);
                    let mut rd = BufReader::with_capacity(64 * 1024, rd);
                    let result = apply::apply(&supervision.inner, &mut rd).await;
                    match &result {
                        Ok(a) => eprintln!(
                            "tether supervise: applied generation {} in {:?}",
                            a.generation, a.took
                        ),
                        Err(f) => eprintln!("tether supervise: an update failed: {f}"),
                    }
                    let reply_line = match result {
                        Ok(applied) => Reply::Ok(applied),
                        Err(failure) => Reply::Failed(failure),
                    };
                    send(rd, wr, &reply_line).await;
                });
            }
            other => tracing::debug!(target = other, "a stream to an unknown target was reset"),
        }
    }
}

/// Writes the reply line, then waits (briefly) until the laptop ends the stream, which it
/// does once it has read the reply: a supervisor about to exit loses no last reply.
async fn send<R, W, T>(mut rd: R, mut wr: W, value: &T)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    T: serde::Serialize,
{
    if wr.write_all(&wire::line(value)).await.is_err() || wr.flush().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(ACK_WAIT, async {
        let mut sink = [0u8; 4096];
        // The rest of an update refused early, then the end.
        while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// An error and its causes on one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
