//! A resource's own checks, run in its newest ready pod through the API server:
//! `ready_cmd`, which holds the resource back from ready until it exits 0 (messages
//! flow, a migration ran), and `status_cmd`, whose output is the resource's status panel
//! (a consumer group's lag), so what is worth watching needs no code of tether's.

use std::time::Duration;

use kube::ResourceExt as _;
use tokio::sync::mpsc;

use super::{error::report, event::Event};
use crate::kube::{PodSet, exec};

/// How often `ready_cmd` runs again while it fails.
pub const READY_EVERY: Duration = Duration::from_secs(1);
/// How often `status_cmd` refreshes the panel.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long a run waits for a ready pod to run in.
const POD_WAIT: Duration = Duration::from_secs(5);
/// The longest one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// One run of `argv` in the newest ready pod of `set`: its output, or why it did not run.
async fn run_in(set: &PodSet, argv: &[String]) -> Result<exec::ExecOutput, String> {
    // Right after a rollout the pod cache may not have listed the ready pod yet.
    let mut changes = set.changes();
    let pod = loop {
        if let Some(pod) = set.newest_ready() {
            break pod;
        }
        match tokio::time::timeout(POD_WAIT, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return Err("no ready pod to run it in".to_owned()),
        }
    };
    exec::exec(set.api(), &pod.name_any(), None, argv, RUN_LIMIT)
        .await
        .map_err(|e| report(&e))
}

/// Runs `argv` every [`READY_EVERY`] until it exits 0, telling `waiting` why not each
/// time the reason changes.
pub async fn until_ready(set: &PodSet, argv: &[String], mut waiting: impl FnMut(String)) {
    let command = argv.join(" ");
    let mut last = None;
    loop {
        let reason = match run_in(set, argv).await {
            Ok(out) if out.success() => return,
            Ok(out) => format!("ready_cmd `{command}`: {}", failed(&out)),
            Err(e) => format!("ready_cmd `{command}`: {e}"),
        };
        if last.as_ref() != Some(&reason) {
            waiting(reason.clone());
            last = Some(reason);
        }
        tokio::time::sleep(READY_EVERY).await;
    }
}

/// Keeps `resource`'s status panel fed with the output of `argv`, every
/// [`STATUS_EVERY`], sending it only when it changed. Ends when the engine is gone.
pub async fn keep_status(
    set: PodSet,
    argv: Vec<String>,
    resource: String,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut last = None;
    loop {
        let text = match run_in(&set, &argv).await {
            Ok(out) if out.success() => out.text(),
            Ok(out) => format!("`{}`: {}", argv.join(" "), failed(&out)),
            Err(e) => format!("`{}`: {e}", argv.join(" ")),
        };
        if last.as_ref() != Some(&text) {
            let event = Event::Status {
                resource: resource.clone(),
                text: text.clone(),
            };
            if events.send(event).is_err() {
                return;
            }
            last = Some(text);
        }
        tokio::time::sleep(STATUS_EVERY).await;
    }
}

/// A failed run in words: its last line of output and its exit code.
fn failed(out: &exec::ExecOutput) -> String {
    let text = out.text();
    let last = text.lines().last().unwrap_or("").trim();
    match (out.code, last.is_empty()) {
        (Some(code), true) => format!("exit code {code}"),
        (Some(code), false) => format!("{last} (exit code {code})"),
        (None, true) => "it ended without an exit code".to_owned(),
        (None, false) => last.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_is_its_last_line_and_code() {
        let out = |stdout: &str, code| exec::ExecOutput {
            code,
            stdout: stdout.into(),
            stderr: String::new(),
        };
        assert_eq!(
            failed(&out("checking\n3 of 100 deliveries so far\n", Some(1))),
            "3 of 100 deliveries so far (exit code 1)"
        );
        assert_eq!(failed(&out("", Some(2))), "exit code 2");
        assert_eq!(
            failed(&out("exec: \"medicin\": not found", None)),
            "exec: \"medicin\": not found"
        );
    }
}
