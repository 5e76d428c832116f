//! The reducer task: the single writer of [`State`]. It applies each event, publishes the
//! state for views that draw snapshots (TUI, `tether status`), and passes the event on to
//! views that print a stream (progress lines, `tether logs -f`).

use tokio::{
    sync::{broadcast, mpsc, watch},
    task::JoinHandle,
};

use super::{event::Event, state::State};

/// How many events a slow stream reader may fall behind before it skips some.
const EVENT_BACKLOG: usize = 4096;

/// Readers' side of the store.
#[derive(Clone)]
pub struct Views {
    pub state: watch::Receiver<State>,
    pub events: broadcast::Sender<Event>,
}

/// Starts the reducer over `event_rx`; it ends when every event sender is gone.
pub fn spawn(
    initial: State,
    mut event_rx: mpsc::UnboundedReceiver<Event>,
) -> (Views, JoinHandle<()>) {
    let (state_tx, state_rx) = watch::channel(initial);
    let (events, _) = broadcast::channel(EVENT_BACKLOG);
    let views = Views {
        state: state_rx,
        events: events.clone(),
    };
    let task = tokio::spawn(async move {
        while let Some(ev) = event_rx.recv().await {
            state_tx.send_modify(|s| s.apply(&ev));
            let _ = events.send(ev);
        }
    });
    (views, task)
}
