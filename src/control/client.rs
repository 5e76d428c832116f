//! The client end of the control socket, for `tether status`, `logs` and `trigger`. It
//! finds the socket from the project folder and turns "nobody there" into words.

use std::{
    io,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::protocol::{ErrorBody, LogRecord, Status};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no `tether up` is running in {root} (no control socket at {socket}); start one with `tether up`"
    )]
    NotRunning { root: PathBuf, socket: PathBuf },
    #[error(
        "no `tether up` is running in {root}: the control socket {socket} was left by one that stopped"
    )]
    Stale { root: PathBuf, socket: PathBuf },
    #[error("cannot connect to the control socket {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the control socket {socket} did not answer HTTP")]
    Http {
        socket: PathBuf,
        #[source]
        source: hyper::Error,
    },
    /// The server answered with an error; `status` is its HTTP code.
    #[error("{message}")]
    Server { status: u16, message: String },
    #[error("the control socket sent something this tether cannot read (a different version?)")]
    Decode(#[source] serde_json::Error),
    /// Writing what was received failed (for example stdout closed).
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    #[error("cannot resolve the project folder {dir}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ClientError {
    /// Whether the request named something that does not exist (an input error).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Server { status: 404, .. })
    }

    /// Whether no `up` runs in the folder (none started, or one that stopped).
    pub fn is_not_running(&self) -> bool {
        matches!(
            self,
            ClientError::NotRunning { .. } | ClientError::Stale { .. }
        )
    }

    /// Whether the output's reader went away (`tether logs | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ClientError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Talks to the `up` of one project folder.
#[derive(Debug, Clone)]
pub struct Client {
    root: PathBuf,
    socket: PathBuf,
}

impl Client {
    /// The client for the project folder `dir` as given on the command line (`-C`), so
    /// it finds the same socket as the `up` started with the same folder.
    pub fn for_dir(dir: &Path) -> Result<Client, ClientError> {
        let root = std::path::absolute(dir).map_err(|source| ClientError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(Client::new(&root))
    }

    pub fn new(root: &Path) -> Client {
        Client {
            root: root.to_path_buf(),
            socket: super::socket_path(root),
        }
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        let body = self.request(Method::GET, "/status").await?;
        let bytes = collect(body, &self.socket).await?;
        serde_json::from_slice(&bytes).map_err(ClientError::Decode)
    }

    /// Queues a rebuild and redeploy of `resource`.
    pub async fn trigger(&self, resource: &str) -> Result<(), ClientError> {
        let body = self
            .request(Method::POST, &format!("/trigger/{resource}"))
            .await?;
        collect(body, &self.socket).await?;
        Ok(())
    }

    /// Calls `on_record` for every stored line of `resource` (or all), then, with
    /// `follow`, for every new one until `up` stops.
    pub async fn logs(
        &self,
        resource: Option<&str>,
        follow: bool,
        mut on_record: impl FnMut(LogRecord) -> io::Result<()>,
    ) -> Result<(), ClientError> {
        let mut path = String::from("/logs?");
        if let Some(r) = resource {
            path.push_str(&format!("resource={r}&"));
        }
        if follow {
            path.push_str("follow=1");
        }
        let mut body = self.request(Method::GET, &path).await?;
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| ClientError::Http {
                socket: self.socket.clone(),
                source,
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let record: LogRecord =
                    serde_json::from_slice(&line).map_err(ClientError::Decode)?;
                on_record(record).map_err(ClientError::Output)?;
            }
        }
        Ok(())
    }

    async fn request(&self, method: Method, path: &str) -> Result<Incoming, ClientError> {
        let stream = match UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClientError::NotRunning {
                    root: self.root.clone(),
                    socket: self.socket.clone(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ClientError::Stale {
                    root: self.root.clone(),
                    socket: self.socket.clone(),
                });
            }
            Err(source) => {
                return Err(ClientError::Connect {
                    socket: self.socket.clone(),
                    source,
                });
            }
        };
        let http_err = |source| ClientError::Http {
            socket: self.socket.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_err)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "tether")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::Server {
                status: 0,
                message: format!("bad request {path}: {e}"),
            })?;
        let response = sender.send_request(req).await.map_err(http_err)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let bytes = collect(response.into_body(), &self.socket).await?;
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| {
                format!(
                    "the control socket answered {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                )
            });
        Err(ClientError::Server {
            status: status.as_u16(),
            message,
        })
    }
}

async fn collect(body: Incoming, socket: &Path) -> Result<Bytes, ClientError> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|source| ClientError::Http {
            socket: socket.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc, time::Duration};

    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{
        control::{
            Instance,
            protocol::{BuildPhase, DeployPhase},
            server::{Control, serve},
        },
        engine::{Event, State},
        logs::LogLine,
        logs_history::History,
    };

    struct Running {
        dir: tempfile::TempDir,
        state_tx: watch::Sender<State>,
        history: Arc<History>,
        trigger_rx: mpsc::Receiver<String>,
        shutdown: CancellationToken,
        _instance: Instance,
    }

    async fn running() -> Running {
        let dir = tempfile::tempdir().unwrap();
        let instance = Instance::acquire(dir.path()).unwrap();
        let listener = instance.bind().unwrap();
        let mut state = State::new(BTreeMap::from([
            ("users".to_owned(), vec!["users".to_owned()]),
            ("db".to_owned(), vec![]),
        ]));
        state.apply(&Event::BuildStarted {
            image: "users".into(),
        });
        let (state_tx, state_rx) = watch::channel(state);
        let history = History::open(dir.path()).unwrap();
        let (trigger_tx, trigger_rx) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let control = Arc::new(Control {
            state: state_rx,
            history: history.clone(),
            trigger_tx,
            root: dir.path().to_path_buf(),
            profile: None,
        });
        tokio::spawn(serve(listener, control, shutdown.clone()));
        Running {
            dir,
            state_tx,
            history,
            trigger_rx,
            shutdown,
            _instance: instance,
        }
    }

    fn line(resource: &str, text: &str) -> LogLine {
        LogLine {
            resource: resource.into(),
            pod: "users-7d9c-x2x4q".into(),
            container: "app".into(),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn status_is_the_state_as_json() {
        let up = running().await;
        let client = Client::new(up.dir.path());
        let status = client.status().await.unwrap();
        assert_eq!(status.version, 1);
        assert_eq!(status.pid, std::process::id());
        assert!(!status.all_ready);
        let users = status.resources.iter().find(|r| r.name == "users").unwrap();
        assert_eq!(users.build, BuildPhase::Building);
        assert_eq!(users.deploy, DeployPhase::Pending);
        up.state_tx.send_modify(|s| {
            s.apply(&Event::Ready {
                resource: "users".into(),
                update: None,
            })
        });
        let status = client.status().await.unwrap();
        let users = status.resources.iter().find(|r| r.name == "users").unwrap();
        assert_eq!(users.deploy, DeployPhase::Ready);
        // The raw JSON carries the words scripts look for.
        let body = client.request(Method::GET, "/status").await.unwrap();
        let raw = collect(body, &client.socket).await.unwrap();
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.contains(r#""deploy":"ready""#), "{raw}");
    }

    #[tokio::test]
    async fn logs_follow_receives_a_line_published_after_connecting() {
        let up = running().await;
        up.history.append(line("users", "old line"));
        up.history.append(line("db", "db line"));
        let client = Client::new(up.dir.path());
        let (got_tx, mut got_rx) = mpsc::unbounded_channel();
        let follower = tokio::spawn(async move {
            client
                .logs(Some("users"), true, |r| {
                    let _ = got_tx.send(r.text);
                    Ok(())
                })
                .await
        });
        let first = tokio::time::timeout(Duration::from_secs(5), got_rx.recv())
            .await
            .unwrap();
        assert_eq!(first.as_deref(), Some("old line"));
        // Connected and caught up: a new line must arrive, the other resource's must not.
        up.history.append(line("db", "not for users"));
        up.history.append(line("users", "new line"));
        let next = tokio::time::timeout(Duration::from_secs(5), got_rx.recv())
            .await
            .unwrap();
        assert_eq!(next.as_deref(), Some("new line"));
        up.shutdown.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .unwrap()
            .unwrap();
        assert!(ended.is_ok(), "{ended:?}");
    }

    #[tokio::test]
    async fn logs_without_follow_end_and_unknown_resources_are_404() {
        let up = running().await;
        up.history.append(line("users", "a"));
        up.history.append(line("users", "b"));
        let client = Client::new(up.dir.path());
        let mut texts = Vec::new();
        client
            .logs(None, false, |r| {
                texts.push(r.text);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(texts, ["a", "b"]);
        let err = client
            .logs(Some("nope"), false, |_| Ok(()))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("known: db, users"), "{err}");
    }

    #[tokio::test]
    async fn trigger_reaches_the_trigger_channel() {
        let mut up = running().await;
        let client = Client::new(up.dir.path());
        client.trigger("users").await.unwrap();
        assert_eq!(up.trigger_rx.recv().await.as_deref(), Some("users"));
        let err = client.trigger("nope").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(up.trigger_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn no_up_running_is_said_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(dir.path());
        let err = client.status().await.unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err}");
        assert!(err.to_string().contains("no `tether up` is running"));
        // A socket left by a dead `up`.
        let socket = crate::control::socket_path(dir.path());
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let err = client.status().await.unwrap_err();
        assert!(matches!(err, ClientError::Stale { .. }), "{err}");
    }
}
