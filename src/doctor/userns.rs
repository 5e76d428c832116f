//! Check 7: whether this machine lets `tether run` make its namespaces, found by making
//! them ([`crate::run::probe`], the same setup a run does) rather than by reading
//! sysctls, which differ between distributions (Debian, Ubuntu's AppArmor, RHEL). The
//! sysctls are shown beside the answer, for whoever has to change them.

use std::time::Duration;

use super::{
    error::{DoctorError, within},
    report::Line,
};
use crate::run::{self, UserNamespace};

pub const USERNS: &str = "user namespaces";

/// A fork, a few system calls and an exec of `tether --version`.
const LIMIT: Duration = Duration::from_secs(10);

/// The sysctls that decide, as `name=value` (those this kernel has).
const SYSCTLS: &[(&str, &str)] = &[
    (
        "kernel.unprivileged_userns_clone",
        "/proc/sys/kernel/unprivileged_userns_clone",
    ),
    (
        "user.max_user_namespaces",
        "/proc/sys/user/max_user_namespaces",
    ),
    (
        "kernel.apparmor_restrict_unprivileged_userns",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ),
];

/// The line, with the sysctls beside what was found either way.
pub async fn userns() -> Line {
    let probed = within(
        LIMIT,
        "the namespace setup of tether run",
        "check that forking a process works here (ulimit -u)",
        async {
            run::probe(UserNamespace::UnlessRoot)
                .await
                .map_err(DoctorError::Namespaces)
        },
    )
    .await;
    let mut line = match probed {
        Ok(p) if p.user_ns => Line::pass(
            USERNS,
            "tether run can make its user, network and mount namespaces and tun0",
        ),
        Ok(_) => Line::pass(
            USERNS,
            "as root, tether run makes its network and mount namespaces and tun0 (no user \
             namespace needed)",
        ),
        Err(e) => e.line(USERNS),
    };
    let sysctls = sysctls();
    if !sysctls.is_empty() {
        line.found = format!("{} ({sysctls})", line.found);
    }
    line
}

/// `name=value` of the sysctls this kernel has, comma-separated.
fn sysctls() -> String {
    SYSCTLS
        .iter()
        .filter_map(|(name, path)| {
            let value = std::fs::read_to_string(path).ok()?;
            Some(format!("{name}={}", value.trim()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
