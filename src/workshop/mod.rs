//! `tether workshop`: a guided workshop as steps, each with a live check of the real
//! state (the cluster, connect, intercepts, local ports, a command's output).
//!
//! Layout, following the data:
//! - [`steps`]: `workshop.toml` → a validated [`Workshop`] (errors carry `file:line:col`).
//! - [`check`]: one step's [`Check`] against the world → an [`Outcome`], time-boxed;
//!   [`edit`] holds the pure parts of the check that a save is served.
//! - [`progress`]: `.tether/workshop.json`, which steps passed and when, and the pure
//!   rule of where a run resumes.
//! - [`report`]: the results as JSON for scripts and as plain lines for a person.
//! - [`screen`]: the terminal screen, drawn from a [`screen::Screen`] only.
//! - [`error`]: what can go wrong, and which of it is bad input.

mod error;

pub mod check;
pub mod edit;
pub mod progress;
pub mod report;
pub mod screen;
pub mod steps;

#[cfg(test)]
mod tests;

pub use self::{
    check::{Env, Outcome},
    error::WorkshopError,
    progress::Progress,
    steps::{Check, Step, Workshop},
};
