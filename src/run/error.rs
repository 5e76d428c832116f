//! What can go wrong with `tether run`, each case deciding whether the user's input was
//! wrong (exit 2) or something failed (exit 1). Causes are kept as sources; the namespace
//! errors name what to check on the machine (sysctls, `/dev/net/tun`).

use std::{fmt, io, path::PathBuf};

use rustix::io::Errno;

/// A failed `tether run` (CMD's own failures are its exit status, not errors).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no command to run\n  hint: `tether run [-n NAMESPACE] -- CMD [ARGS…]`")]
    NoCommand,
    #[error("`{program}`: command not found")]
    CommandNotFound {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{program}` cannot be executed")]
    NotExecutable {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is not a directory to run in", dir.display())]
    BadWorkingDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the laptop's resolver configuration `{}`", path.display())]
    ReadResolvConf {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the namespace's resolv.conf in `{}`", dir.display())]
    WriteResolvConf {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on 127.0.0.1:{port} for --publish {port}")]
    Publish {
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("lost track of `{program}`")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot watch for signals to pass on to the command")]
    Signals(#[source] io::Error),
    #[error("the network of the command's namespace failed")]
    Stack(#[from] StackError),
}

impl RunError {
    /// 2 when the command line was wrong (nothing to run, no such program or directory),
    /// 1 when something failed.
    pub fn exit_code(&self) -> i32 {
        if self.is_bad_input() { 2 } else { 1 }
    }

    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::NoCommand
                | Self::CommandNotFound { .. }
                | Self::NotExecutable { .. }
                | Self::BadWorkingDir { .. }
        )
    }
}

/// A step of the namespace setup in the child, as its failure report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    DeathSignal = 1,
    Unshare,
    SetGroups,
    UidMap,
    GidMap,
    MountPrivate,
    Loopback,
    OpenTun,
    CreateTun,
    ConfigureTun,
    BindResolvConf,
}

impl Step {
    const ALL: [Step; 11] = [
        Step::DeathSignal,
        Step::Unshare,
        Step::SetGroups,
        Step::UidMap,
        Step::GidMap,
        Step::MountPrivate,
        Step::Loopback,
        Step::OpenTun,
        Step::CreateTun,
        Step::ConfigureTun,
        Step::BindResolvConf,
    ];

    pub(crate) fn from_u8(raw: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u8 == raw)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::DeathSignal => "tying the command's life to tether's (PR_SET_PDEATHSIG)",
            Step::Unshare => "creating the namespaces (unshare)",
            Step::SetGroups => "writing /proc/self/setgroups",
            Step::UidMap => "writing /proc/self/uid_map",
            Step::GidMap => "writing /proc/self/gid_map",
            Step::MountPrivate => "making the mounts private to the namespace",
            Step::Loopback => "bringing up lo",
            Step::OpenTun => "opening /dev/net/tun",
            Step::CreateTun => "creating the TUN device (TUNSETIFF)",
            Step::ConfigureTun => "setting tun0's address and route",
            Step::BindResolvConf => "mounting the namespace's /etc/resolv.conf",
        })
    }
}

/// The sysctls that decide whether an unprivileged user may create a user namespace.
pub const USERNS_SYSCTLS: &str = "kernel.unprivileged_userns_clone (Debian: must be 1), \
     user.max_user_namespaces (must be > 0), \
     kernel.apparmor_restrict_unprivileged_userns (Ubuntu: must be 0)";

/// Why the namespace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "this machine does not let an unprivileged user create a user namespace\n  hint: check the sysctls {USERNS_SYSCTLS}, or run as root"
    )]
    UserNamespacesDisabled {
        #[source]
        source: io::Error,
    },
    #[error(
        "the new user namespace was denied what it needs ({step})\n  hint: an AppArmor or SELinux policy restricts unprivileged user namespaces; check kernel.apparmor_restrict_unprivileged_userns (must be 0)"
    )]
    UserNamespaceRestricted {
        step: Step,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot create a network namespace as root\n  hint: inside a container, tether run needs CAP_SYS_ADMIN and CAP_NET_ADMIN"
    )]
    NetNamespaceDenied {
        #[source]
        source: io::Error,
    },
    #[error(
        "this machine has no TUN device (/dev/net/tun)\n  hint: `modprobe tun` as root; in a container, pass the device in (`--device /dev/net/tun`)"
    )]
    NoTun {
        #[source]
        source: io::Error,
    },
    #[error(
        "/dev/net/tun is not open to this user\n  hint: it is usually mode 0666 (udev's default); `ls -l /dev/net/tun` shows who may use it"
    )]
    TunDenied {
        #[source]
        source: io::Error,
    },
    #[error("setting up the command's namespace failed while {step}")]
    Step {
        step: Step,
        #[source]
        source: io::Error,
    },
    #[error("the path `{}` contains a NUL byte", .0.display())]
    NulInPath(PathBuf),
    #[error("the namespace setup ended without handing over its TUN device")]
    NoReport,
    #[error("cannot read the namespace setup's report")]
    Report(#[source] io::Error),
    #[error("cannot make the channel the namespace setup reports on")]
    Channel(#[source] io::Error),
}

impl NamespaceError {
    /// The error for `step` failing with `errno`, in the words of its likely cause.
    pub(crate) fn from_step(step: Step, errno: Errno, user_ns: bool) -> Self {
        let source = io::Error::from(errno);
        let denied = matches!(errno, Errno::PERM | Errno::ACCESS);
        match step {
            // EPERM (sysctl, AppArmor), EINVAL (no CONFIG_USER_NS), ENOSPC (max_user_namespaces=0),
            // EUSERS (too deep).
            Step::Unshare if user_ns => Self::UserNamespacesDisabled { source },
            Step::Unshare if denied => Self::NetNamespaceDenied { source },
            Step::OpenTun if matches!(errno, Errno::NOENT | Errno::NODEV | Errno::NXIO) => {
                Self::NoTun { source }
            }
            Step::OpenTun if denied => Self::TunDenied { source },
            Step::CreateTun if errno == Errno::NODEV || errno == Errno::NOENT => {
                Self::NoTun { source }
            }
            Step::SetGroups
            | Step::UidMap
            | Step::GidMap
            | Step::MountPrivate
            | Step::Loopback
            | Step::CreateTun
            | Step::ConfigureTun
            | Step::BindResolvConf
                if user_ns && denied =>
            {
                Self::UserNamespaceRestricted { step, source }
            }
            _ => Self::Step { step, source },
        }
    }
}

/// Why the userspace network stack stopped.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot watch the TUN device")]
    Register(#[source] io::Error),
    #[error("reading the TUN device failed")]
    Read(#[source] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_survives_the_report_byte() {
        for step in Step::ALL {
            assert_eq!(Step::from_u8(step as u8), Some(step));
        }
        assert_eq!(Step::from_u8(0), None);
        assert_eq!(Step::from_u8(200), None);
    }

    #[test]
    fn no_user_namespaces_names_the_sysctls_to_check() {
        for errno in [Errno::PERM, Errno::INVAL, Errno::NOSPC] {
            let err = NamespaceError::from_step(Step::Unshare, errno, true);
            let msg = err.to_string();
            assert!(matches!(err, NamespaceError::UserNamespacesDisabled { .. }));
            for sysctl in [
                "kernel.unprivileged_userns_clone",
                "user.max_user_namespaces",
                "kernel.apparmor_restrict_unprivileged_userns",
            ] {
                assert!(msg.contains(sysctl), "{msg}");
            }
        }
    }

    #[test]
    fn a_missing_or_closed_tun_device_says_so() {
        let err = NamespaceError::from_step(Step::OpenTun, Errno::NOENT, true);
        assert!(err.to_string().contains("/dev/net/tun"));
        assert!(err.to_string().contains("modprobe tun"));
        let err = NamespaceError::from_step(Step::OpenTun, Errno::ACCESS, true);
        assert!(matches!(err, NamespaceError::TunDenied { .. }));
        assert!(err.to_string().contains("0666"));
    }

    #[test]
    fn a_restricted_user_namespace_points_at_apparmor() {
        let err = NamespaceError::from_step(Step::CreateTun, Errno::PERM, true);
        assert!(matches!(
            err,
            NamespaceError::UserNamespaceRestricted { .. }
        ));
        assert!(
            err.to_string()
                .contains("kernel.apparmor_restrict_unprivileged_userns")
        );
        // As root the same errno is just the step failing.
        let err = NamespaceError::from_step(Step::CreateTun, Errno::PERM, false);
        assert!(matches!(err, NamespaceError::Step { .. }));
    }

    #[test]
    fn the_cause_is_kept() {
        let err = RunError::from(NamespaceError::from_step(
            Step::ConfigureTun,
            Errno::INVAL,
            false,
        ));
        // Transparent: the namespace error's cause is the run error's.
        let source = std::error::Error::source(&err).expect("the errno");
        assert!(source.to_string().contains("Invalid argument"), "{source}");
        assert_eq!(err.exit_code(), 1);
    }
}
