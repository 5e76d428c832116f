//! The sockets of the userspace stack, shared between the task that polls the stack and the
//! tasks that read and write its connections: one lock around smoltcp's socket set, and
//! the notification that tells the stack to poll again after a task changed a socket.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smoltcp::iface::{SocketHandle, SocketSet};
use tokio::sync::Notify;

/// What the lock guards.
pub(crate) struct Sockets {
    pub(crate) set: SocketSet<'static>,
    /// Connections whose task ended: the stack removes their sockets once smoltcp is done
    /// with them (closed, or in TIME-WAIT).
    pub(crate) released: Vec<SocketHandle>,
}

pub(crate) struct Shared {
    sockets: Mutex<Sockets>,
    /// Wakes the stack's task: a socket has data to send, room to receive, or was closed.
    poll: Notify,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            sockets: Mutex::new(Sockets {
                set: SocketSet::new(Vec::new()),
                released: Vec::new(),
            }),
            poll: Notify::new(),
        })
    }

    /// The socket set. A task that panicked while holding it left smoltcp's state as it
    /// was between two calls, which is consistent, so the poison is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Sockets> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the stack to poll soon (a stored permit if it is busy now).
    pub(crate) fn wake_stack(&self) {
        self.poll.notify_one();
    }

    /// Resolves when some task asked for a poll.
    pub(crate) async fn poll_requested(&self) {
        self.poll.notified().await
    }
}
