//! `tether-agent supervise ARGS -- ARGV`: the in-pod half of live update. It runs as the
//! app container's command (from the binary the init container copied to
//! [`BINARY`](crate::wire::BINARY)), starts the app under it, and takes updates
//! from laptops on its control port (127.0.0.1 only: the API server's port-forward
//! arrives there, other pods cannot): files written into the container, commands run, the
//! app restarted. Synced files are kept on the emptyDir, which outlives container
//! restarts, and written back when the container starts again. When the app exits on its
//! own, the supervisor exits with its code, so the kubelet sees the crash; as PID 1 it
//! also reaps orphans and passes signals on.
//!
//! Layout:
//! - [`args`]: the command line and environment, into a [`SuperviseConfig`].
//! - [`program`]: the file argv\[0\] names, found as `execvp` would.
//! - [`store`]: the state directory, staged and atomic writes, the replay.
//! - [`child`]: the app's process: start, restart, signals, its exit.
//! - [`reaper`]: the one waiter for exited children (and orphans, as PID 1).
//! - `steps`: an update's run steps, their output and time limit.
//! - `apply`: one update, from its header to its reply.
//! - [`serve`]: [`Supervision`], the shared state, and the control port.
//! - `run`: `tether-agent supervise` itself; `error`: its errors.
//!
//! The wire it speaks is [`crate::wire`]'s.

mod apply;
pub mod args;
pub mod child;
mod error;
pub mod program;
pub mod reaper;
mod run;
pub mod serve;
mod steps;
pub mod store;

pub use self::{
    args::{SuperviseArgs, SuperviseConfig},
    error::{StoreError, SuperviseError},
    run::main,
    serve::Supervision,
};

#[cfg(test)]
mod tests;
