//! What a laptop is told when attaching to a supervisor or updating through it fails:
//! the supervisor's [`Failure`](super::wire::Failure)s as sentences, and the tunnel's and
//! stream's faults with their causes.

use std::time::Duration;

use crate::tunnel::TunnelError;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot attach to the live-update supervisor")]
    Attach(#[source] TunnelError),
    #[error("the live-update supervisor refused the attach: {reason}")]
    Refused { reason: String },
    #[error("the session with the live-update supervisor ended: {reason}")]
    Closed { reason: String },
    #[error("cannot open a stream to the live-update supervisor")]
    Open(#[source] TunnelError),
    #[error(
        "cannot write {path} in the container: {reason}; sync targets must be writable by \
         the container's user (on a mounted volume, for example) or be the program itself"
    )]
    NotWritable { path: String, reason: String },
    #[error(
        "the run step `{}` {}; the update's files stay written{}",
        argv.join(" "),
        match code { Some(c) => format!("exited with code {c}"), None => "did not finish".into() },
        if output.is_empty() { String::new() } else { format!(". Its output:\n{output}") }
    )]
    RunFailed {
        argv: Vec<String>,
        code: Option<i32>,
        output: String,
    },
    #[error("the restarted app exited with code {code} before its ports answered")]
    ChildExited { code: i32 },
    #[error(
        "the app's port{} {} did not answer within {after:?} of its restart",
        if ports.len() == 1 { "" } else { "s" },
        ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
    )]
    NotReady { ports: Vec<u16>, after: Duration },
    #[error("the live-update supervisor rejected the update: {reason}")]
    Rejected { reason: String },
    #[error("the live-update supervisor failed: {reason}")]
    Supervisor { reason: String },
    #[error(
        "the live-update supervisor ended the `{target}` stream without an answer: a tether \
         older than this one injected it, or it exited"
    )]
    NoReply { target: &'static str },
    #[error("the live-update supervisor's answer to `{target}` is not valid")]
    BadReply {
        target: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the `{target}` stream to the live-update supervisor failed")]
    Io {
        target: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl LiveError {
    /// Whether the update itself was wrong (a path, a step): sending it again will not help.
    pub fn is_bad_update(&self) -> bool {
        matches!(
            self,
            LiveError::NotWritable { .. }
                | LiveError::RunFailed { .. }
                | LiveError::Rejected { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_sentences() {
        let e = LiveError::RunFailed {
            argv: vec!["npm".into(), "run".into(), "build".into()],
            code: Some(2),
            output: "error TS2322\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "the run step `npm run build` exited with code 2; the update's files stay \
             written. Its output:\nerror TS2322\n"
        );
        let e = LiveError::NotReady {
            ports: vec![8080, 9090],
            after: Duration::from_secs(30),
        };
        assert_eq!(
            e.to_string(),
            "the app's ports 8080, 9090 did not answer within 30s of its restart"
        );
        let e = LiveError::NotWritable {
            path: "/etc/app.toml".into(),
            reason: "Read-only file system (os error 30)".into(),
        };
        assert!(e.to_string().starts_with(
            "cannot write /etc/app.toml in the container: Read-only file system (os error 30); \
             sync targets must be writable"
        ));
        assert!(e.is_bad_update());
    }
}
