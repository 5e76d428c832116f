//! One `tether run`: plan the namespace, start CMD in it, serve its network until CMD
//! exits, and leave nothing behind on the laptop.

use std::{
    io::{self, Write},
    os::{fd::AsFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use rustix::process::Signal;
use tokio_util::sync::CancellationToken;

use super::{
    child,
    command::{RunCommand, RunOptions, UserNamespace},
    error::{NamespaceError, RunError, StackError},
    namespace::{self, ChildSetup, Report},
    plan::{self, Addresses, LaptopResolver},
    stack::{self, StackConfig},
    tun::Tun,
};
use crate::connect::ClusterNet;

/// How long CMD has to exit after SIGTERM when its network failed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs `cmd` in a namespace of its own whose network is `net`'s cluster plus the laptop's
/// own network, and returns CMD's exit status once it exited ([`exit_code`] makes it
/// tether's). CMD's stdio is tether's.
///
/// While CMD runs, tether's SIGINT, SIGTERM, SIGHUP and SIGQUIT are CMD's to act on:
/// tether does not die of them but passes them on (SIGINT and SIGQUIT only when they did
/// not come from the terminal, which sent them to CMD already). tokio keeps these
/// handlers for the rest of the process, so call this last. If tether is killed, CMD is too.
///
/// [`exit_code`]: super::exit_code
pub async fn run<N: ClusterNet>(cmd: RunCommand, net: N) -> Result<ExitStatus, RunError> {
    run_with(cmd, net, RunOptions::default()).await
}

/// [`run`] with the laptop side as `options` says.
pub async fn run_with<N: ClusterNet>(
    cmd: RunCommand,
    net: N,
    options: RunOptions,
) -> Result<ExitStatus, RunError> {
    if cmd.program.is_empty() {
        return Err(RunError::NoCommand);
    }
    if let Some(dir) = &cmd.cwd {
        check_dir(dir)?;
    }
    let program = cmd.display_program();
    tracing::debug!(
        %program,
        namespace = %cmd.namespace,
        "running in a namespace whose network is the cluster's and the laptop's"
    );

    // Published ports are taken before CMD starts: one in use is refused with nothing run.
    let mut published = Vec::with_capacity(options.publish.len());
    for &port in &options.publish {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| RunError::Publish { port, source })?;
        published.push((port, listener));
    }
    let laptop = LaptopResolver::parse(&read_resolv_conf(&options.resolv_conf)?);
    let upstreams = options
        .upstream_dns
        .clone()
        .unwrap_or_else(|| laptop.nameservers.clone());
    let addrs = Addresses::default_plan();
    let resolv_file = TempFile::write(&laptop.namespace_resolv_conf(&addrs))?;

    let user_ns = match options.user_namespace {
        UserNamespace::UnlessRoot => !rustix::process::geteuid().is_root(),
        UserNamespace::Always => true,
    };
    let (ours, theirs) = namespace::report_pair().map_err(NamespaceError::Channel)?;
    let setup = ChildSetup::new(user_ns, addrs, resolv_file.path())?;
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    setup.install(&mut command, theirs);

    let spawned = child::spawn(command).await;
    let report = namespace::read_report(ours.as_fd());
    // The bind mount keeps the file's contents for CMD; its name on the laptop goes now.
    drop(resolv_file);

    let child = match spawned {
        Ok(child) => child,
        Err(source) => return Err(spawn_error(&program, source, report, user_ns)),
    };
    let tun = match report {
        Ok(Some(Report::Ready { tun, ipv6 })) => {
            if !ipv6 {
                tracing::debug!("the kernel has no IPv6: the run namespace is IPv4 only");
            }
            tun
        }
        // A spawn that succeeded had a setup that did too; anything else is a broken child.
        Ok(_) => {
            child.signal(Signal::KILL);
            return Err(NamespaceError::NoReport.into());
        }
        Err(e) => {
            child.signal(Signal::KILL);
            return Err(NamespaceError::Report(e).into());
        }
    };
    let tun = match Tun::new(tun) {
        Ok(tun) => tun,
        Err(e) => {
            child.signal(Signal::KILL);
            return Err(StackError::Register(e).into());
        }
    };

    let shutdown = CancellationToken::new();
    let config = StackConfig {
        addrs,
        mtu: plan::MTU,
        upstreams,
    };
    let (inbound_tx, inbound) = tokio::sync::mpsc::channel(stack::MAX_INBOUND_WAITING);
    for (port, listener) in published {
        tokio::spawn(stack::publish(
            port,
            listener,
            inbound_tx.clone(),
            shutdown.clone(),
        ));
    }
    drop(inbound_tx);
    let mut network = tokio::spawn(stack::serve(tun, config, net, inbound, shutdown.clone()));
    let pid = child.pid();
    let waited = child.wait(&program);
    tokio::pin!(waited);
    let status = tokio::select! {
        status = &mut waited => status,
        served = &mut network => {
            // The stack only ends by itself on a device error: CMD has no network left.
            let err = match served {
                Ok(Err(e)) => e,
                _ => StackError::Read(io::Error::other("the network task ended")),
            };
            tracing::error!(error = %err, "the run namespace lost its network; stopping `{program}`");
            child::send_signal(pid, Signal::TERM);
            if tokio::time::timeout(STOP_GRACE, &mut waited).await.is_err() {
                child::send_signal(pid, Signal::KILL);
                let _ = waited.await;
            }
            return Err(err.into());
        }
    };
    shutdown.cancel();
    let _ = network.await;
    status
}

/// The error of a failed spawn, in the words of the step that failed.
fn spawn_error(
    program: &str,
    source: io::Error,
    report: io::Result<Option<Report>>,
    user_ns: bool,
) -> RunError {
    match report {
        Ok(Some(Report::Failed(failure))) => {
            NamespaceError::from_step(failure.step, failure.errno, user_ns).into()
        }
        // The namespace was ready: exec itself failed.
        Ok(Some(Report::Ready { .. })) => match source.kind() {
            io::ErrorKind::NotFound => RunError::CommandNotFound {
                program: program.to_string(),
                source,
            },
            io::ErrorKind::PermissionDenied => RunError::NotExecutable {
                program: program.to_string(),
                source,
            },
            _ => RunError::Spawn {
                program: program.to_string(),
                source,
            },
        },
        _ => RunError::Spawn {
            program: program.to_string(),
            source,
        },
    }
}

fn check_dir(dir: &Path) -> Result<(), RunError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(RunError::BadWorkingDir {
            dir: dir.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        }),
        Err(source) => Err(RunError::BadWorkingDir {
            dir: dir.to_path_buf(),
            source,
        }),
    }
}

/// The laptop's resolv.conf; a missing one reads as empty (glibc then asks the local host).
fn read_resolv_conf(path: &Path) -> Result<String, RunError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(RunError::ReadResolvConf {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The namespace's resolv.conf while the namespace is being made: created afresh (never an
/// existing file), readable by CMD whatever uid it runs as, removed when dropped.
pub(super) struct TempFile {
    path: PathBuf,
}

impl TempFile {
    pub(super) fn write(contents: &str) -> Result<Self, RunError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir();
        let name = format!(
            "tether-run-resolv.{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut f| f.write_all(contents.as_bytes()));
        match written {
            Ok(()) => Ok(Self { path }),
            Err(source) => {
                let _ = std::fs::remove_file(&path);
                Err(RunError::WriteResolvConf { dir, source })
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
