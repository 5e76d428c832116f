//! The daemon behind `tether up`.
//!
//! Layout: tasks (watcher, builds, deploys, forwards, log followers) report [`event::Event`]s
//! on one channel; [`state::State::apply`] is the only writer of state; views
//! ([`progress`] lines, later the TUI and the control socket) read events or snapshots and
//! hold no logic of their own. [`session::Session`] runs the rounds; `observe` keeps the
//! pods, logs and readiness of each deployed resource reported while it stays deployed.

pub mod event;
mod observe;
pub mod progress;
pub mod session;
pub mod state;
pub mod store;

pub use self::{
    event::{Event, UpdateTiming},
    session::{Failure, Options, Session},
    state::State,
    store::Views,
};
