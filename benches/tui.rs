//! Frame time of the TUI while 10,000 log lines a second flow into the engine's state.
//! Prints figures; asserts nothing about time.
//!
//! Two runs:
//! - `steady`: lines applied straight to a `State` between frames (what one frame costs:
//!   the snapshot clone the runner takes, plus drawing to a `TestBackend`), at 80×24 and
//!   200×60, following all logs, one resource, and with a filter.
//! - `live`: the real reducer task (`engine::store`) fed by a producer at 10,000 lines a
//!   second while a draw loop redraws on state changes at most 30 times a second, as
//!   `tui::run` does; reports frame times, frames drawn and lines applied.
//!
//! Run: `cargo bench --bench tui` (SECONDS=5 by default for `live`).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use ratatui::{Terminal, backend::TestBackend};
use tether::{
    engine::{Event, State},
    logs::LogLine,
    tui::{
        App,
        app::{Focus, Scope},
        view,
    },
};
use tokio::sync::mpsc;

const LINES_PER_SECOND: usize = 10_000;
const FPS: u32 = 30;
const RESOURCES: [&str; 5] = ["gateway", "orders", "payments", "products", "users"];

fn state() -> State {
    State::new(
        RESOURCES
            .iter()
            .map(|r| (r.to_string(), vec![r.to_string()]))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn line(i: usize) -> Event {
    let resource = RESOURCES[i % RESOURCES.len()];
    Event::Log(LogLine {
        resource: resource.into(),
        pod: format!("{resource}-7d9c5b-x2x4q"),
        container: "app".into(),
        text: format!(
            "{i} GET /api/{resource}/{} 200 1.{}ms user-agent=curl/8.5 trace=4bf92f3577b34da6",
            i % 977,
            i % 10
        ),
    })
}

struct Figures(Vec<Duration>);

impl Figures {
    fn print(mut self, label: &str) {
        self.0.sort();
        let n = self.0.len();
        if n == 0 {
            println!("{label:<34} no frames");
            return;
        }
        let at = |p: f64| self.0[((n as f64 * p) as usize).min(n - 1)];
        let mean = self.0.iter().sum::<Duration>() / n as u32;
        println!(
            "{label:<34} frames {n:>5}  mean {:>8.3} ms  p50 {:>8.3} ms  p95 {:>8.3} ms  max {:>8.3} ms",
            ms(mean),
            ms(at(0.5)),
            ms(at(0.95)),
            ms(*self.0.last().unwrap_or(&Duration::ZERO))
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Frames of `app` at `width`×`height`, each after a frame's worth of lines.
fn steady(label: &str, app: &App, width: u16, height: u16) {
    let mut s = state();
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    let per_frame = LINES_PER_SECOND / FPS as usize;
    let mut i = 0;
    // Fill memory first, so every frame sees the bounded log buffer full.
    for _ in 0..tether::engine::state::LOG_LINES_IN_MEMORY {
        s.apply(&line(i));
        i += 1;
    }
    let mut frames = Vec::new();
    let mut apply = Duration::ZERO;
    for _ in 0..(FPS * 5) {
        let t = Instant::now();
        for _ in 0..per_frame {
            s.apply(&line(i));
            i += 1;
        }
        apply += t.elapsed();
        let t = Instant::now();
        let snapshot = s.clone();
        terminal
            .draw(|f| view::draw(f, &snapshot, app))
            .expect("test backend draws");
        frames.push(t.elapsed());
    }
    Figures(frames).print(label);
    println!(
        "{:<34} reducer: {:.3} µs per log line applied",
        "",
        apply.as_secs_f64() * 1e6 / (FPS as usize * 5 * per_frame) as f64
    );
}

/// The reducer task fed at 10,000 lines a second, and a draw loop as `tui::run` has.
async fn live(seconds: u64) {
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (views, _store) = tether::engine::store::spawn(state(), event_rx);
    let producer = tokio::spawn(async move {
        let batch = LINES_PER_SECOND / 100;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut i = 0;
        let end = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < end {
            tick.tick().await;
            for _ in 0..batch {
                let _ = event_tx.send(line(i));
                i += 1;
            }
        }
        i
    });
    let app = App::new("bench");
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let mut state_rx = views.state.clone();
    let frame = Duration::from_secs(1) / FPS;
    let mut frames = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut last = Instant::now() - frame;
    while Instant::now() < end {
        if state_rx.changed().await.is_err() {
            break;
        }
        let due = last + frame;
        if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        let t = Instant::now();
        let snapshot = state_rx.borrow_and_update().clone();
        terminal
            .draw(|f| view::draw(f, &snapshot, &app))
            .expect("test backend draws");
        frames.push(t.elapsed());
        last = Instant::now();
    }
    let sent = producer.await.unwrap_or(0);
    let drawn = frames.len();
    Figures(frames).print("live 120x40, reducer task");
    println!(
        "{:<34} {sent} lines sent in {seconds} s ({:.0}/s), {drawn} frames ({:.1}/s)",
        "",
        sent as f64 / seconds as f64,
        drawn as f64 / seconds as f64
    );
}

fn main() {
    let seconds = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "TUI frame time with {LINES_PER_SECOND} log lines/s ({} kept in memory), {FPS} fps cap",
        tether::engine::state::LOG_LINES_IN_MEMORY
    );
    let all = App::new("bench");
    steady("steady 80x24, all logs", &all, 80, 24);
    steady("steady 200x60, all logs", &all, 200, 60);
    let mut one = App::new("bench");
    one.scope = Scope::Selected;
    one.selected = 4;
    one.focus = Focus::Logs;
    steady("steady 200x60, one resource", &one, 200, 60);
    let mut filtered = App::new("bench");
    filtered.filter = "payments/97".into();
    steady("steady 200x60, filter (rare match)", &filtered, 200, 60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(live(seconds));
}
