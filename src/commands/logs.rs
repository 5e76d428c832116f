//! `tether logs [RESOURCE] [-f]`: the stored log lines of the `up` running in a project
//! folder, and with `-f` every new one until that `up` stops.

use std::io::Write as _;

use super::{Failure, status::failure};
use crate::{cli::Target, control::Client};

pub async fn run(target: Target, resource: Option<String>, follow: bool) -> Result<(), Failure> {
    let client = Client::for_dir(&target.dir).map_err(failure)?;
    let stdout = std::io::stdout();
    let result = client
        .logs(resource.as_deref(), follow, |r| {
            let pod = r.pod.rsplit('-').next().unwrap_or(&r.pod);
            let mut out = stdout.lock();
            writeln!(out, "[{}] {pod} | {}", r.resource, r.text)?;
            // Followed lines are wanted now, not when a buffer fills.
            if follow { out.flush() } else { Ok(()) }
        })
        .await;
    match result {
        Err(e) if e.is_broken_pipe() => Ok(()),
        Err(e) => Err(failure(e)),
        Ok(()) => match stdout.lock().flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Failed(e.into())),
            _ => Ok(()),
        },
    }
}
