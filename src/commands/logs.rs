//! `tether logs [RESOURCE] [--pod POD] [-f] [-o json|yaml]`: the stored log lines of the `up` running
//! in a project folder, and with `-f` every new one until that `up` stops. As text, one
//! line per log line tagged with its resource and pod; for scripts, one record each.

use std::io::Write as _;

use super::{
    Failure,
    output::{self, Shape},
    status::failure,
};
use crate::{cli::LogsArgs, control::Client, logs::short_pod};

pub async fn run(args: LogsArgs) -> Result<(), Failure> {
    let LogsArgs {
        target,
        resource,
        pod,
        follow,
        output,
    } = args;
    let machine = output::machine(output);
    let client = Client::for_dir(&target.dir).map_err(failure)?;
    let stdout = std::io::stdout();
    let result = client
        .logs(resource.as_deref(), follow, |r| {
            if pod.as_deref().is_some_and(|p| !is_pod(&r.pod, p)) {
                return Ok(());
            }
            let mut out = stdout.lock();
            match machine {
                Some(format) => {
                    let record =
                        output::render(format, Shape::Event, &r).map_err(std::io::Error::other)?;
                    out.write_all(record.as_bytes())?;
                }
                None => {
                    writeln!(out, "[{}] {} | {}", r.resource, short_pod(&r.pod), r.text)?;
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

/// Whether `--pod wanted` names `pod`: the whole name, or the tail lines are tagged with.
fn is_pod(pod: &str, wanted: &str) -> bool {
    pod == wanted || short_pod(pod) == wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_named_whole_or_by_its_tag() {
        assert!(is_pod("medicine-7d9c-x2x4q", "x2x4q"));
        assert!(is_pod("medicine-7d9c-x2x4q", "medicine-7d9c-x2x4q"));
        assert!(!is_pod("medicine-7d9c-x2x4q", "x2x4"));
        assert!(!is_pod("medicine-7d9c-x2x4q", "medicine"));
        assert!(is_pod("kafka-0", "0"));
    }
}
