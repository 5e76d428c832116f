//! The daemon behind `tether up`.
//!
//! Layout, in the order a change flows through it:
//! - [`facts`]: one walk of the project per change set (input files, digests, the images
//!   each manifest names).
//! - [`plan`]: the pure decision of what to build, what to apply and what was an input of
//!   nothing, from a change set, the project, those facts and the last digests.
//! - [`live`]: live update's side of a round: supervised deploys, syncs into running
//!   pods, and pods that appear after a sync.
//! - [`session`]: the loop that reloads `tether.toml` when it changed, plans, and runs each
//!   round (build → apply → ready), every stage handing the next its value.
//! - [`event`], [`error`]: what the tasks report on one channel, errors kept typed.
//! - [`state`], [`store`]: [`state::State::apply`] is the only writer of state; the store
//!   publishes snapshots and passes events on.
//! - [`checks`]: a resource's `ready_cmd` and `status_cmd`, run in one of its pods.
//! - [`observe`]: keeps the pods, logs and readiness of each deployed resource reported
//!   while it stays deployed, from one pod cache per workload.
//! - [`memory`]: what an idle `up` gives back: freed heap pages, the pages of code it ran.

mod checks;
pub mod error;
pub mod event;
pub mod facts;
pub mod live;
mod memory;
mod observe;
pub mod plan;
pub mod session;
pub mod state;
pub mod store;

pub use self::{
    error::{RoundError, report},
    event::{Event, UpdateTiming},
    plan::Plan,
    session::{Failure, Options, Session},
    state::State,
    store::Views,
};
