//! `tether logs [RESOURCE] [-f] [-o json|yaml]`: the stored log lines of the `up` running
//! in a project folder, and with `-f` every new one until that `up` stops. As text, one
//! line per log line tagged with its resource and pod; for scripts, one record each.

use std::io::Write as _;

use super::{
    Failure,
    output::{self, Shape},
    status::failure,
};
use crate::{cli::LogsArgs, control::Client};

pub async fn run(args: LogsArgs) -> Result<(), Failure> {
    let LogsArgs {
        target,
        resource,
        follow,
        output,
    } = args;
    let machine = output::machine(output);
    let client = Client::for_dir(&target.dir).map_err(failure)?;
    let stdout = std::io::stdout();
    let result = client
        .logs(resource.as_deref(), follow, |r| {
            let mut out = stdout.lock();
            match machine {
                Some(format) => {
                    let record =
                        output::render(format, Shape::Event, &r).map_err(std::io::Error::other)?;
                    out.write_all(record.as_bytes())?;
                }
                None => {
                    let pod = r.pod.rsplit('-').next().unwrap_or(&r.pod);
                    writeln!(out, "[{}] {pod} | {}", r.resource, r.text)?;
                }
            }
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
