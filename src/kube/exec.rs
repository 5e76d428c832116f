//! A command run in a pod's container through the API server, as `kubectl exec` runs it:
//! the laptop needs no route to the pod, only to the API server. Used for a resource's
//! `ready_cmd` and `status_cmd`.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Status};
use kube::{Api, api::AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most output kept of one stream: a status panel, not a log.
const MAX_OUTPUT: usize = 16 * 1024;

/// What one run printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code; `None` when the API server did not say (the stream broke).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The output in one text: stdout, then stderr, trimmed.
    pub fn text(&self) -> String {
        let (out, err) = (self.stdout.trim_end(), self.stderr.trim_end());
        match (out.is_empty(), err.is_empty()) {
            (_, true) => out.to_owned(),
            (true, false) => err.to_owned(),
            (false, false) => format!("{out}\n{err}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not run `{command}` in pod {pod}")]
    Start {
        command: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("`{command}` in pod {pod} did not finish within {}s", .limit.as_secs())]
    TimedOut {
        command: String,
        pod: String,
        limit: Duration,
    },
}

/// Runs `argv` in `container` (the pod's first when `None`) of `pod`, without stdin, and
/// waits at most `limit` for it to finish.
pub async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    argv: &[String],
    limit: Duration,
) -> Result<ExecOutput, ExecError> {
    let command = argv.join(" ");
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let run = async {
        let mut attached = pods
            .exec(pod, argv.iter().map(String::as_str), &params)
            .await
            .map_err(|source| ExecError::Start {
                command: command.clone(),
                pod: pod.to_owned(),
                source,
            })?;
        let status = attached.take_status();
        let (stdout, stderr) = tokio::join!(
            read_bounded(attached.stdout()),
            read_bounded(attached.stderr())
        );
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        let _ = attached.join().await;
        let code = status.as_ref().and_then(exit_code);
        // A program that could not start has no code, only the runtime's message.
        let stderr = match status.and_then(|s| s.message).filter(|_| code.is_none()) {
            Some(m) => format!("{stderr}{m}"),
            None => stderr,
        };
        Ok(ExecOutput {
            code,
            stdout,
            stderr,
        })
    };
    tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
        Err(ExecError::TimedOut {
            command,
            pod: pod.to_owned(),
            limit,
        })
    })
}

/// Reads a stream to its end, keeping the first [`MAX_OUTPUT`] bytes.
async fn read_bounded(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The exit code the API server reports in the exec's closing status: `Success`, or a
/// failure whose `ExitCode` cause carries the code.
fn exit_code(s: &Status) -> Option<i32> {
    if s.status.as_deref() == Some("Success") {
        return Some(0);
    }
    s.details
        .as_ref()?
        .causes
        .iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    use super::*;

    #[test]
    fn the_exit_code_comes_from_the_closing_status() {
        let ok = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(&ok), Some(0));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(&failed), Some(3));
        // A failure to start the program names no code.
        let unknown = Status {
            status: Some("Failure".into()),
            message: Some("executable file not found".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(&unknown), None);
    }

    #[test]
    fn text_puts_stderr_after_stdout() {
        let o = |out: &str, err: &str| ExecOutput {
            code: Some(1),
            stdout: out.into(),
            stderr: err.into(),
        };
        assert_eq!(o("3 of 5\n", "").text(), "3 of 5");
        assert_eq!(o("", "no broker\n").text(), "no broker");
        assert_eq!(o("a\n", "b\n").text(), "a\nb");
    }
}
