//! Live update: changed files sent into running containers without an image build, for
//! any image (also `FROM scratch` ones with no shell or tar). The static agent binary (crate
//! `tether-agent`) is copied into the pod (`tether-agent copy-self`) and runs the app under
//! it as a supervisor (`tether-agent supervise`); the laptop attaches to the supervisor's
//! control port and sends updates.
//!
//! Layout:
//! - [`wire`] (`tether_wire::live`): the paths and ports of the pod side, the requests and
//!   replies on the supervisor's control port, their framing and compatibility rules; the
//!   supervisor speaks the same crate.
//! - [`client`]: [`Supervisor`], the laptop's end: attach, ask for the state, apply.
//! - [`inject`]: the supervisor in a rendered pod spec (init container, volume, command).
//! - [`files`]: the local files the rules cover now, and what one container needs of them.
//! - `error`: [`LiveError`], what a laptop is told when an attach or an update fails.
//!
//! The engine decides sync or rebuild (`engine::plan::live`) and carries syncs out
//! (`engine::live`).

mod error;

pub mod client;
pub mod files;
pub mod inject;

pub use tether_wire::live as wire;

pub use self::{
    client::Supervisor,
    error::LiveError,
    wire::{Applied, FileUpdate, RunOutput, RunStep, State, Update},
};
