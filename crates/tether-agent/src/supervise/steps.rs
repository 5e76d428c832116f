//! An update's run steps: each argv executed directly (images may have no shell), in the
//! app's working directory and environment, its stdout and stderr captured together
//! through one pipe (so they interleave as they happened), the end of it kept
//! ([`MAX_OUTPUT`]), killed with its process group after a time limit.

use std::{
    collections::VecDeque,
    ffi::OsString,
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::Duration,
};

use tokio::io::AsyncReadExt;

use super::reaper::{self, Exit, Reaper};
use crate::wire::{MAX_OUTPUT, RunOutput};

/// How long output may keep coming after the step exited: a daemon it started may hold
/// the pipe open for ever.
const DRAIN: Duration = Duration::from_millis(500);

/// Runs `argv` with `env`; at most `limit`.
pub async fn run(
    argv: &[String],
    env: &[(OsString, OsString)],
    reaper: &Reaper,
    limit: Duration,
) -> RunOutput {
    let mut tail = Tail::default();
    let code = match run_into(argv, env, reaper, limit, &mut tail).await {
        Ok(code) => code,
        Err(e) => {
            tail.note(&format!(
                "cannot run `{}`: {e}",
                argv.first().map_or("", String::as_str)
            ));
            None
        }
    };
    RunOutput {
        argv: argv.to_vec(),
        code,
        output: tail.text(),
    }
}

async fn run_into(
    argv: &[String],
    env: &[(OsString, OsString)],
    reaper: &Reaper,
    limit: Duration,
    tail: &mut Tail,
) -> std::io::Result<Option<i32>> {
    let Some(program) = argv.first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the step has no command",
        ));
    };
    let (out_tx, mut out_rx) = tokio::net::unix::pipe::pipe()?;
    let out = out_tx.into_blocking_fd()?;
    let err = out.try_clone()?;
    let mut command = Command::new(program);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let spawned = reaper.spawn(&mut command);
    // The command holds the pipe's write ends: until it is gone, the output never ends.
    drop(command);
    let (pid, mut exit_rx) = spawned?;

    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    let mut exit: Option<Exit> = None;
    let mut reading = true;
    let mut timed_out = false;
    while exit.is_none() || reading {
        tokio::select! {
            read = out_rx.read(&mut buf), if reading => match read {
                Ok(0) | Err(_) => reading = false,
                Ok(n) => tail.push(&buf[..n]),
            },
            e = &mut exit_rx, if exit.is_none() => {
                // A lost waiter means the step's end is unknown: report it as killed.
                exit = Some(e.unwrap_or(Exit::Signal(libc::SIGKILL)));
                if reading {
                    // Whatever is still coming comes soon, or never: what came is kept
                    // either way.
                    let _ = tokio::time::timeout(DRAIN, async {
                        loop {
                            match out_rx.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => tail.push(&buf[..n]),
                            }
                        }
                    })
                    .await;
                    reading = false;
                }
            },
            _ = tokio::time::sleep_until(deadline), if !timed_out => {
                timed_out = true;
                reaper::send_group(pid, libc::SIGKILL);
            },
        }
    }
    if timed_out {
        tail.note(&format!("killed after {limit:?}"));
        return Ok(None);
    }
    Ok(match exit {
        Some(Exit::Code(c)) => Some(c),
        Some(Exit::Signal(s)) => {
            tail.note(&format!("killed by signal {s}"));
            None
        }
        None => None,
    })
}

/// The last [`MAX_OUTPUT`] bytes of a step's output, and how many came before them.
#[derive(Default)]
struct Tail {
    bytes: VecDeque<u8>,
    cut: usize,
}

impl Tail {
    fn push(&mut self, more: &[u8]) {
        self.bytes.extend(more);
        let over = self.bytes.len().saturating_sub(MAX_OUTPUT);
        self.bytes.drain(..over);
        self.cut += over;
    }

    /// A line of tether's own at the end, marked as such.
    fn note(&mut self, text: &str) {
        let newline = !self.bytes.is_empty() && self.bytes.back() != Some(&b'\n');
        let line = format!("{}[tether: {text}]\n", if newline { "\n" } else { "" });
        self.push(line.as_bytes());
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let body = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        match self.cut {
            0 => body,
            n => format!("[tether: {n} earlier bytes cut]\n{body}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(OsString, OsString)> {
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("GREETING".into(), "hi".into()),
        ]
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn a_step_runs_without_a_shell_with_both_streams_in_order() {
        let reaper = Reaper::start(false).unwrap();
        let limit = Duration::from_secs(20);
        let out = run(
            &argv(&[
                "sh",
                "-c",
                "echo $GREETING; echo oops >&2; echo done; exit 4",
            ]),
            &env(),
            &reaper,
            limit,
        )
        .await;
        assert_eq!(out.code, Some(4));
        assert_eq!(out.output, "hi\noops\ndone\n");
        let out = run(&argv(&["true"]), &env(), &reaper, limit).await;
        assert_eq!((out.code, out.output.as_str()), (Some(0), ""));
        let out = run(&argv(&["no-such-command-here"]), &env(), &reaper, limit).await;
        assert_eq!(out.code, None);
        assert!(
            out.output.contains("cannot run `no-such-command-here`"),
            "{}",
            out.output
        );
    }

    #[tokio::test]
    async fn a_step_past_its_limit_is_killed_with_what_it_started() {
        let reaper = Reaper::start(false).unwrap();
        let out = run(
            &argv(&["sh", "-c", "echo started; sleep 600 & sleep 600"]),
            &env(),
            &reaper,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(out.code, None);
        assert!(out.output.starts_with("started\n"), "{}", out.output);
        assert!(
            out.output.contains("[tether: killed after 300ms]"),
            "{}",
            out.output
        );
    }

    #[test]
    fn the_output_keeps_its_end() {
        let mut tail = Tail::default();
        tail.push(&vec![b'a'; MAX_OUTPUT]);
        tail.push(b"the error\n");
        let text = tail.text();
        assert!(
            text.starts_with("[tether: 10 earlier bytes cut]\n"),
            "{}",
            &text[..40]
        );
        assert!(text.ends_with("the error\n"));
        assert_eq!(
            text.len(),
            "[tether: 10 earlier bytes cut]\n".len() + MAX_OUTPUT
        );
    }
}
