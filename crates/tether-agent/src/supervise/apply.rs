//! One update, from its header line to the [`Applied`] reply: the files staged (every
//! target proven writable first), their bytes streamed in, the commit, the run steps in
//! order, the restart, the wait for the ports. The first failure ends it, as a
//! [`Failure`] the laptop reads; what was committed before it stays.

use std::{path::Path, time::Duration};

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt},
    net::TcpStream,
    sync::watch,
    time::Instant,
};

use super::{child::ChildStatus, error::StoreError, serve::Inner, serve::chain, steps};
use crate::wire::{self, Applied, ApplyHeader, Failure, MAX_LINE};

/// How often the ports are tried while the app starts.
const PORT_POLL: Duration = Duration::from_millis(25);
/// How long one try may take: a port that does not answer at once is tried again.
const PORT_TRY: Duration = Duration::from_secs(1);

/// Applies the update whose header and bytes `rd` carries.
pub(super) async fn apply<R>(s: &Inner, rd: &mut R) -> Result<Applied, Failure>
where
    R: AsyncBufRead + Unpin,
{
    let began = Instant::now();
    let line = wire::read_line(rd, MAX_LINE)
        .await
        .map_err(|e| bad(format!("cannot read the update's header: {}", chain(&e))))?;
    let header: ApplyHeader = serde_json::from_slice(&line)
        .map_err(|e| bad(format!("the update's header does not parse: {e}")))?;
    if header.run.iter().any(|step| step.argv.is_empty()) {
        return Err(bad("a run step has no command".into()));
    }

    let mut store = s.store.lock().await;
    let mut staging = store.stage(&header, &s.program).map_err(failure)?;
    for (index, len) in staging.lengths().into_iter().enumerate() {
        let mut left = len;
        while left > 0 {
            let chunk = rd.fill_buf().await.map_err(|e| Failure::Failed {
                reason: format!("the update's stream failed: {e}"),
            })?;
            if chunk.is_empty() {
                return Err(failure(StoreError::Truncated {
                    path: staging.path(index).to_owned(),
                    got: len - left,
                    want: len,
                }));
            }
            let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            staging.write(index, &chunk[..n]).map_err(failure)?;
            rd.consume(n);
            left -= n as u64;
        }
    }
    store
        .commit(staging, header.generation, &s.program)
        .map_err(failure)?;

    let mut runs = Vec::with_capacity(header.run.len());
    for step in &header.run {
        let out = steps::run(&step.argv, &s.config.env, &s.reaper, s.config.run_timeout).await;
        if out.code != Some(0) {
            return Err(Failure::RunFailed {
                argv: out.argv,
                code: out.code,
                output: out.output,
            });
        }
        runs.push(out);
    }

    let mut restarted = None;
    if header.restart {
        let exec = store.exec().map(Path::to_owned);
        match s.restarts.restart(exec).await {
            Ok(r) => restarted = Some(r.began),
            Err(exit) => {
                let code = exit.or_else(|| exited(&s.child_rx)).map_or(1, |e| e.code());
                return Err(Failure::ChildExited { code });
            }
        }
    }
    if !header.wait_ports.is_empty() {
        wait_ports(
            &header.wait_ports,
            s.child_rx.clone(),
            s.config.ports_timeout,
        )
        .await?;
    }
    drop(store);
    Ok(Applied {
        generation: header.generation,
        runs,
        restarted: restarted.map(|t| t.elapsed()),
        took: began.elapsed(),
    })
}

/// Waits until every port accepts a connection on 127.0.0.1, the app exits, or `limit`.
async fn wait_ports(
    ports: &[u16],
    mut child_rx: watch::Receiver<ChildStatus>,
    limit: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    let mut pending = ports.to_vec();
    let mut keeper_gone = false;
    loop {
        let mut still = Vec::new();
        for port in pending {
            if !answers(port).await {
                still.push(port);
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        if let Some(exit) = exited(&child_rx) {
            return Err(Failure::ChildExited { code: exit.code() });
        }
        if keeper_gone {
            return Err(Failure::ChildExited { code: 1 });
        }
        if Instant::now() >= deadline {
            return Err(Failure::NotReady {
                ports: pending,
                after: limit,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(PORT_POLL) => {}
            changed = child_rx.changed() => keeper_gone = changed.is_err(),
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// How the app exited on its own, if it did.
fn exited(child_rx: &watch::Receiver<ChildStatus>) -> Option<super::reaper::Exit> {
    child_rx.borrow().exited.map(|(_, exit)| exit)
}

async fn answers(port: u16) -> bool {
    matches!(
        tokio::time::timeout(PORT_TRY, TcpStream::connect(("127.0.0.1", port))).await,
        Ok(Ok(_))
    )
}

fn bad(reason: String) -> Failure {
    Failure::BadRequest { reason }
}

/// The reply a store error gives.
fn failure(e: StoreError) -> Failure {
    match e {
        StoreError::BadRequest(reason) => Failure::BadRequest { reason },
        StoreError::NotWritable { path, source } => Failure::NotWritable {
            path,
            reason: source.to_string(),
        },
        e @ StoreError::Truncated { .. } => Failure::BadRequest {
            reason: e.to_string(),
        },
        e @ StoreError::Io { .. } => Failure::Failed { reason: chain(&e) },
    }
}
