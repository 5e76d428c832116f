//! The laptop: a network namespace, made by `scripts/dev-cluster`, that reaches the
//! cluster's API server and image registry and nothing else of it.
//!
//! Why: every other test runs tether on the cluster's node, where pod IPs, ClusterIPs and
//! cluster DNS all work, so code that dialled them directly would pass here and fail
//! against any real remote cluster. From inside the namespace they fail as they would on a
//! developer's machine (`tests/e2e/laptop.rs` proves it), while the API server (at the
//! address in `TETHER_LAPTOP_KUBECONFIG`) and the registry (`TETHER_LAPTOP_REGISTRY`, the
//! same `127.0.0.1:5000` as on the node) answer.
//!
//! How: a network namespace belongs to a thread (`setns(CLONE_NEWNET)` moves only the
//! calling thread, and threads it starts inherit it), and a socket stays in the namespace
//! it was made in, whichever thread uses it later. So:
//! - [`Laptop::command`] runs a program inside: the child calls `setns` between fork and
//!   exec, with `KUBECONFIG` and `TETHER_REGISTRY` as the laptop sees them
//!   ([`Laptop::tether`] so runs the tether under test);
//! - [`Laptop::run`] runs a closure on a thread of its own inside, and
//!   [`Laptop::block_on`] a future on a runtime of its own there (a kube client, reqwest);
//! - [`Laptop::bind_tcp`] and [`Laptop::connect_tcp`] make sockets inside and hand them
//!   to the caller: a listener bound so plays the developer's local process that a
//!   `tether intercept` run inside reaches on 127.0.0.1.

use std::{
    ffi::OsStr,
    fs::File,
    io,
    net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    os::{
        fd::{AsFd as _, BorrowedFd, OwnedFd},
        unix::process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
    time::Duration,
};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// The laptop namespace and how things inside it name the cluster.
#[derive(Debug, Clone)]
pub struct Laptop {
    /// The namespace's handle, `/run/netns/<name>`.
    netns: PathBuf,
    /// A kubeconfig whose server is the API server as the namespace reaches it.
    pub kubeconfig: PathBuf,
    /// The registry as tether inside names it (`TETHER_REGISTRY`); `None` leaves tether to
    /// the cluster's advert.
    pub registry: Option<String>,
}

impl Laptop {
    /// The namespace `scripts/dev-cluster env` names, or `None` (with a message) when the
    /// environment names none and no cluster is required. With `TETHER_REQUIRE_CLUSTER`, a
    /// missing or broken laptop is a failure, not a skip.
    pub fn from_env() -> Option<Laptop> {
        let required = std::env::var_os("TETHER_REQUIRE_CLUSTER").is_some();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(name), Some(kubeconfig)) =
            (var("TETHER_LAPTOP_NETNS"), var("TETHER_LAPTOP_KUBECONFIG"))
        else {
            assert!(
                !required,
                "TETHER_LAPTOP_NETNS and TETHER_LAPTOP_KUBECONFIG are not set: \
                 eval \"$(scripts/dev-cluster env)\""
            );
            eprintln!(
                "SKIPPED: no laptop namespace (eval \"$(scripts/dev-cluster env)\" names it)"
            );
            return None;
        };
        let netns = if name.contains('/') {
            PathBuf::from(&name)
        } else {
            Path::new("/run/netns").join(&name)
        };
        let laptop = Laptop {
            netns,
            kubeconfig: PathBuf::from(kubeconfig),
            registry: var("TETHER_LAPTOP_REGISTRY"),
        };
        if let Err(e) = laptop.open() {
            assert!(
                !required,
                "the laptop namespace {name} cannot be entered ({e}); `scripts/dev-cluster up` makes it"
            );
            eprintln!("SKIPPED: the laptop namespace {name} cannot be entered: {e}");
            return None;
        }
        Some(laptop)
    }

    fn open(&self) -> io::Result<OwnedFd> {
        File::open(&self.netns).map(OwnedFd::from)
    }

    fn handle(&self) -> OwnedFd {
        self.open().unwrap_or_else(|e| {
            panic!(
                "cannot open the laptop namespace {}: {e}",
                self.netns.display()
            )
        })
    }

    /// `program` to be run inside the namespace, with `KUBECONFIG` (and `TETHER_REGISTRY`)
    /// as the laptop sees the cluster.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let ns = self.handle();
        let mut command = Command::new(program);
        command.env("KUBECONFIG", &self.kubeconfig);
        if let Some(registry) = &self.registry {
            command.env("TETHER_REGISTRY", registry);
        }
        // SAFETY: the hook runs in the forked child before exec and makes one system call
        // (setns) on a descriptor opened before the fork; it allocates and locks nothing.
        unsafe {
            command.pre_exec(move || enter(ns.as_fd()));
        }
        command
    }

    /// `tether ARGS` in `dir`, to be run inside the namespace, set up as
    /// [`crate::process::command`] sets up tether on the node.
    pub fn tether(&self, dir: &Path, args: &[&str]) -> Command {
        crate::process::prepare(self.command(env!("CARGO_BIN_EXE_tether")), dir, args)
    }

    /// Runs `f` on a new thread inside the namespace and returns what it returns (a panic in
    /// `f` is the caller's panic). Threads `f` starts are inside too.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = self.handle();
        std::thread::scope(|s| {
            s.spawn(move || {
                enter(ns.as_fd()).expect("setns into the laptop namespace (needs root)");
                drop(ns);
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Like [`Laptop::run`], but gives up waiting after `timeout` (the thread is left to
    /// finish by itself): for calls that could hang, such as name lookups.
    pub fn run_for<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let ns = self.handle();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            enter(ns.as_fd()).expect("setns into the laptop namespace (needs root)");
            drop(ns);
            let _ = done_tx.send(f());
        });
        done_rx.recv_timeout(timeout).ok()
    }

    /// Runs `future` to completion on a current-thread runtime of its own inside the
    /// namespace, so every connection it opens (a kube client's, reqwest's) starts there.
    pub fn block_on<F: Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(future)
        })
    }

    /// A listener bound inside the namespace (e.g. on `127.0.0.1:0`): the developer's local
    /// process. It can be accepted from any thread, or given to tokio with
    /// `set_nonblocking(true)` and `tokio::net::TcpListener::from_std`.
    pub fn bind_tcp(&self, addr: impl ToSocketAddrs + Send) -> io::Result<TcpListener> {
        self.run(|| TcpListener::bind(addr))
    }

    /// A connection made from inside the namespace, given up after `timeout`.
    pub fn connect_tcp(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        self.run(|| TcpStream::connect_timeout(&addr, timeout))
    }

    /// Resolves `host` from inside the namespace, as a program there would (getaddrinfo);
    /// `None` if no answer came within `timeout`.
    pub fn resolve(&self, host: &str, timeout: Duration) -> Option<io::Result<Vec<SocketAddr>>> {
        let host = host.to_owned();
        self.run_for(timeout, move || {
            (host.as_str(), 0).to_socket_addrs().map(Iterator::collect)
        })
    }

    /// The API server's `host:port` in the laptop kubeconfig: where the namespace reaches
    /// the cluster (the registry answers at the same host).
    pub fn api_server(&self) -> SocketAddr {
        let config = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("{}: {e}", self.kubeconfig.display()));
        let server = config
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .unwrap_or_else(|| panic!("{} names no server", self.kubeconfig.display()));
        let authority = server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        authority
            .parse()
            .unwrap_or_else(|e| panic!("server {server} is not an IP address and port: {e}"))
    }

    /// A kube client from the laptop kubeconfig. Use it inside [`Laptop::block_on`]: its
    /// connections are made by the runtime that polls it.
    pub async fn client(&self) -> kube::Client {
        let config = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("{}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.kubeconfig.display()));
        kube::Client::try_from(config).expect("a kube client from the laptop kubeconfig")
    }
}

/// Moves the calling thread (or the child between fork and exec) into the namespace.
fn enter(ns: BorrowedFd<'_>) -> io::Result<()> {
    move_into_link_name_space(ns, Some(LinkNameSpaceType::Network)).map_err(io::Error::from)
}
