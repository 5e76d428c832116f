//! The namespace setup of `tether run` alone, with nothing run in it: how `tether doctor`
//! learns whether this machine lets `tether run` make its namespaces. It forks a child
//! with the very [`ChildSetup`] a run installs (user, network and mount namespaces,
//! `tun0`, the resolv.conf bind) and execs this executable with `--version`, so what
//! passes here passes for `tether run` too. The child's TUN device is dropped at once.

use std::{os::fd::AsFd, process::Command};

use super::{
    child,
    command::UserNamespace,
    error::{NamespaceError, RunError},
    namespace::{self, ChildSetup, Report},
    plan::{Addresses, LaptopResolver},
    session::TempFile,
};

/// What the probe made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    /// Whether a user namespace was made (not as root, see [`UserNamespace`]).
    pub user_ns: bool,
    /// Whether `tun0` got IPv6 too.
    pub ipv6: bool,
}

/// Makes the namespaces `tether run` makes, as `user_namespace` says, and reports what the
/// kernel refused in the words `tether run` uses.
pub async fn probe(user_namespace: UserNamespace) -> Result<Probed, RunError> {
    let user_ns = match user_namespace {
        UserNamespace::UnlessRoot => !rustix::process::geteuid().is_root(),
        UserNamespace::Always => true,
    };
    let addrs = Addresses::default_plan();
    let resolv_file = TempFile::write(&LaptopResolver::parse("").namespace_resolv_conf(&addrs))?;
    let (ours, theirs) = namespace::report_pair().map_err(NamespaceError::Channel)?;
    let setup = ChildSetup::new(user_ns, addrs, resolv_file.path())?;
    let exe = std::env::current_exe().map_err(|source| RunError::Spawn {
        program: "tether".into(),
        source,
    })?;
    let program = exe.display().to_string();
    let mut command = Command::new(&exe);
    command
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    setup.install(&mut command, theirs);
    let spawned = child::spawn(command).await;
    let report = namespace::read_report(ours.as_fd());
    drop(resolv_file);
    let failed = |source| RunError::Spawn {
        program: program.clone(),
        source,
    };
    match (spawned, report) {
        (Ok(child), Ok(Some(Report::Ready { ipv6, .. }))) => {
            // `--version` exits at once; only that it ran matters, not how it ended.
            let _ = child.exited().await;
            Ok(Probed { user_ns, ipv6 })
        }
        (_, Ok(Some(Report::Failed(f)))) => {
            Err(NamespaceError::from_step(f.step, f.errno, user_ns).into())
        }
        (Err(source), _) => Err(failed(source)),
        (Ok(child), report) => {
            child.signal(rustix::process::Signal::KILL);
            Err(match report {
                Err(e) => NamespaceError::Report(e),
                Ok(_) => NamespaceError::NoReport,
            }
            .into())
        }
    }
}
