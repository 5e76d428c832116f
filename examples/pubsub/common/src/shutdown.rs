//! Stopping on SIGTERM (the kubelet's) or Ctrl-C, between two messages, so
//! the work in hand is finished and the consumer leaves its group at once
//! instead of after its session times out.

use tokio::signal::unix::{SignalKind, signal};

/// Completes when the process is asked to stop.
pub async fn requested() {
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        // No SIGTERM handler: Ctrl-C still works, and the kubelet's SIGKILL follows anyway.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
