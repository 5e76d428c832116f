//! The interactive view of `tether up`: the resource list and the log pane a developer
//! watches all day.
//!
//! Layout, in the events → action → update → draw shape of ratatui's templates:
//! - [`app`]: UI-only state; keys become actions, `update` applies them and names the
//!   work to do (trigger, history read, exit).
//! - [`view`]: draws a frame from the engine's `State` and the `App`; reads only.
//! - [`terminal`]: raw mode and the alternate screen, restored on drop and on panic.
//! - [`run`] (here): the loop that feeds keys, state changes and history pages into the
//!   app, carries out its effects and redraws when something changed, at most
//!   [`MAX_FPS`] times a second, never in a busy loop.
//!
//! Data comes from the engine's [`Views`] and the on-disk [`History`]; what is sent back
//! is a resource name on the session's trigger channel, and a scale (`+`/`-`) straight to
//! the cluster, which the engine then observes like any other change.

pub mod app;
pub mod terminal;
#[cfg(test)]
mod tests;
pub mod view;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

use self::app::Effect;
pub use self::app::{App, Exit};
use crate::{
    deploy::scale::{Count, Scaler},
    engine::Views,
    logs_history::{History, Page},
};

/// Redraws per second at most, however fast the state changes.
pub const MAX_FPS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("the terminal failed")]
    Terminal(#[source] std::io::Error),
}

/// A page of history read for the held log pane made at `generation`.
struct Loaded {
    generation: u64,
    page: Result<Page, String>,
}

/// How often the title bar asks the laptop's connect session how it is.
const CONNECT_EVERY: Duration = Duration::from_secs(2);

/// `connect: api via tether-connect-… (2 open)`, while this user runs `tether connect`.
async fn connect_summary() -> Option<String> {
    let s = crate::connect::control::running().await?;
    Some(format!(
        "connect: {} via {} ({} open)",
        s.held.namespace,
        s.agent.as_deref().unwrap_or("reconnecting"),
        s.open_connections
    ))
}

/// What the TUI shows and where it sends things.
pub struct Options {
    /// For the title bar: the project and where it runs.
    pub title: String,
    /// Where stderr goes while the TUI owns the terminal.
    pub diagnostics: Option<PathBuf>,
    /// What `+` and `-` scale with.
    pub scaler: Scaler,
}

/// Runs the TUI until the developer quits (returning how) or `shutdown` (returning
/// [`Exit::Keep`]). The terminal is restored before this returns.
pub async fn run(
    views: Views,
    history: Arc<History>,
    trigger_tx: mpsc::Sender<String>,
    options: Options,
    shutdown: CancellationToken,
) -> Result<Exit, TuiError> {
    let mut tui =
        terminal::Tui::enter(options.diagnostics.as_deref()).map_err(TuiError::Terminal)?;
    let mut app = App::new(options.title);
    let mut state_rx = views.state.clone();
    let mut keys = EventStream::new();
    let (loaded_tx, mut loaded_rx) = mpsc::unbounded_channel::<Loaded>();
    // What a scale did, for the title bar.
    let (scaled_tx, mut scaled_rx) = mpsc::unbounded_channel::<String>();
    let frame = Duration::from_secs(1) / MAX_FPS;
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let mut engine_gone = false;
    // The connect session is another process's: asked over its local socket, not watched.
    let mut connect_tick = tokio::time::interval(CONNECT_EVERY);
    loop {
        let due = last_draw.map_or(Instant::now(), |t| t + frame);
        if dirty && Instant::now() >= due {
            let snapshot = state_rx.borrow_and_update().clone();
            let completed = tui
                .terminal
                .draw(|f| view::draw(f, &snapshot, &app))
                .map_err(TuiError::Terminal)?;
            app.log_rows = view::log_rows(completed.area, &snapshot, &app);
            last_draw = Some(Instant::now());
            dirty = false;
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(Exit::Keep),
            _ = connect_tick.tick() => {
                let now = connect_summary().await;
                if now != app.connect {
                    app.connect = now;
                    dirty = true;
                }
            }
            ev = keys.next() => match ev {
                Some(Ok(TermEvent::Key(key))) => {
                    let Some(action) = app.action(key) else { continue };
                    let effect = {
                        let state = state_rx.borrow();
                        app.update(action, &state)
                    };
                    match effect {
                        Some(Effect::Exit(exit)) => return Ok(exit),
                        Some(Effect::Trigger(name)) => trigger(&mut app, &trigger_tx, name),
                        Some(Effect::Scale { resource, by }) => {
                            app.note(format!("scaling {resource}…"));
                            let (scaler, scaled_tx) = (options.scaler.clone(), scaled_tx.clone());
                            tokio::spawn(async move {
                                let note = match scaler.scale(&resource, None, Count::By(by)).await {
                                    Ok(s) => format!("{resource}: {s}"),
                                    Err(e) => format!("{resource}: {}", crate::engine::report(&e)),
                                };
                                let _ = scaled_tx.send(note);
                            });
                        }
                        Some(Effect::LoadHistory { resource, before, generation }) => {
                            let history = history.clone();
                            let loaded_tx = loaded_tx.clone();
                            tokio::task::spawn_blocking(move || {
                                let page = history
                                    .page(resource.as_deref(), before.as_ref(), app::HISTORY_PAGE)
                                    .map_err(|e| format!("{e:#}"));
                                let _ = loaded_tx.send(Loaded { generation, page });
                            });
                        }
                        None => {}
                    }
                    // A key is answered at once, not at the next frame.
                    dirty = true;
                    last_draw = None;
                }
                Some(Ok(TermEvent::Resize(..))) => {
                    dirty = true;
                    last_draw = None;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(TuiError::Terminal(e)),
                None => return Ok(Exit::Keep),
            },
            changed = state_rx.changed(), if !engine_gone => {
                engine_gone = changed.is_err();
                dirty = true;
            }
            Some(note) = scaled_rx.recv() => {
                app.note(note);
                dirty = true;
            }
            Some(loaded) = loaded_rx.recv() => {
                app.history_loaded(loaded.generation, loaded.page);
                dirty = true;
            }
            _ = tokio::time::sleep_until(due.into()), if dirty => {}
        }
    }
}

fn trigger(app: &mut App, trigger_tx: &mpsc::Sender<String>, name: String) {
    match trigger_tx.try_send(name.clone()) {
        Ok(()) => app.note(format!("rebuild of {name} queued")),
        Err(TrySendError::Full(_)) => app.note("busy: rebuilds are already queued"),
        Err(TrySendError::Closed(_)) => app.note("the session is stopping"),
    }
}
