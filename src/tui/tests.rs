//! Snapshot tests of the TUI's screens: `State` values built through the reducer, drawn to
//! ratatui's `TestBackend`, compared with the `.snap` files in `snapshots/`. Colours are
//! not in the snapshots, so the few that carry meaning are checked cell by cell.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ratatui::{Terminal, backend::TestBackend, buffer::Buffer, style::Color};

use super::{
    app::{App, Focus, Overlay, Scope},
    view,
};
use crate::{
    build::{BuildError, BuildTimings, Built},
    deploy::rollout::{PodCounts, Replica},
    engine::{Event, RoundError, State, UpdateTiming},
    forward::{Health, HealthEvent},
    logs::LogLine,
};

fn shop() -> State {
    State::new(BTreeMap::from([
        ("gateway".to_owned(), vec!["gateway".to_owned()]),
        ("postgres".to_owned(), vec![]),
        ("users".to_owned(), vec!["users".to_owned()]),
    ]))
}

fn built(image: &str, secs: u64) -> Event {
    Event::BuildDone {
        image: image.into(),
        result: Ok(Built {
            image: image.into(),
            reference: format!("127.0.0.1:5000/{image}:tether-abc"),
            digest: "abc".into(),
            rebuilt: true,
            timings: BuildTimings {
                digest: Duration::from_millis(20),
                host_build: Duration::from_secs(secs),
                image_build: Duration::from_millis(800),
                push: Duration::from_millis(300),
            },
        }),
    }
}

fn host_build_failed() -> Arc<BuildError> {
    Arc::new(BuildError::HostBuild {
        command: "cargo build --release".into(),
        status: "exit status 101".into(),
        output: "error[E0425]: cannot find value `usr` in this scope\n  --> src/main.rs:14:5"
            .into(),
    })
}

fn forward(resource: &str, local: u16, health: Health) -> Event {
    Event::Forward(HealthEvent {
        resource: resource.into(),
        local,
        health,
    })
}

fn pods(resource: &str, ready: usize, total: usize, restarts: u32) -> Event {
    Event::Pods {
        resource: resource.into(),
        counts: PodCounts {
            ready,
            total,
            restarts,
        },
        replicas: (0..total)
            .map(|i| Replica {
                pod: format!("{resource}-7d9f8-{i}"),
                ready: i < ready,
                restarts: 0,
            })
            .collect(),
    }
}

fn log(resource: &str, text: &str) -> Event {
    Event::Log(LogLine {
        resource: resource.into(),
        pod: format!("{resource}-7d9c5b-x2x4q"),
        container: "app".into(),
        text: text.into(),
    })
}

fn apply(state: &mut State, events: impl IntoIterator<Item = Event>) {
    for e in events {
        state.apply(&e);
    }
}

fn building() -> State {
    let mut s = shop();
    apply(
        &mut s,
        [
            Event::DeployStarted {
                resource: "postgres".into(),
            },
            Event::Waiting {
                resource: "postgres".into(),
                reason: "pod postgres-0: pulling image postgres:16".into(),
            },
            Event::BuildStarted {
                image: "users".into(),
            },
            Event::BuildStarted {
                image: "gateway".into(),
            },
            Event::Building {
                image: "users".into(),
                elapsed: Duration::from_secs(42),
            },
            forward("users", 8001, Health::Waiting),
            forward("gateway", 8000, Health::Waiting),
        ],
    );
    s
}

fn failed() -> State {
    let mut s = building();
    apply(
        &mut s,
        [
            Event::BuildDone {
                image: "users".into(),
                result: Err(host_build_failed()),
            },
            Event::Failed {
                resource: "users".into(),
                error: Arc::new(RoundError::Build {
                    image: "users".into(),
                    source: host_build_failed(),
                }),
            },
            built("gateway", 3),
            Event::DeployStarted {
                resource: "gateway".into(),
            },
            Event::Waiting {
                resource: "gateway".into(),
                reason: "waiting for `users` to be ready".into(),
            },
            log("postgres", "database system is ready to accept connections"),
        ],
    );
    s
}

fn ready() -> State {
    let mut s = shop();
    apply(
        &mut s,
        [
            built("users", 2),
            built("gateway", 3),
            pods("users", 1, 1, 0),
            pods("gateway", 2, 2, 1),
            pods("postgres", 1, 1, 0),
            forward(
                "users",
                8001,
                Health::Healthy {
                    pod: "users-7d9c5b-x2x4q".into(),
                },
            ),
            forward(
                "gateway",
                8000,
                Health::Healthy {
                    pod: "gateway-5f6d-abcde".into(),
                },
            ),
        ],
    );
    for r in ["postgres", "users", "gateway"] {
        s.apply(&Event::DeployStarted { resource: r.into() });
        s.apply(&Event::Ready {
            resource: r.into(),
            update: (r == "users").then_some(UpdateTiming {
                watch: Duration::from_millis(50),
                digest: Duration::from_millis(20),
                host_build: Duration::from_millis(2100),
                image_build: Duration::from_millis(800),
                push: Duration::from_millis(300),
                apply: Duration::from_millis(40),
                rollout: Duration::from_millis(900),
                total: Duration::from_millis(4210),
                ..UpdateTiming::default()
            }),
        });
    }
    for i in 0..40 {
        let (r, text) = match i % 4 {
            0 => ("users", format!("GET /users/{i} 200 1.2ms")),
            1 => ("gateway", format!("proxy /api/users/{i} -> users 200")),
            2 => (
                "users",
                "\u{1b}[32mINFO\u{1b}[0m\tpool: 4 connections".to_owned(),
            ),
            _ => (
                "postgres",
                format!("checkpoint complete: wrote {i} buffers"),
            ),
        };
        s.apply(&log(r, &text));
    }
    s
}

fn render(state: &State, app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view::draw(f, state, app)).unwrap();
    terminal
}

fn app() -> App {
    App::new("context kind-tether · session 3f2a")
}

/// The colour of the first cell where `word` starts on a line containing `on_line`.
fn color_of(buffer: &Buffer, on_line: &str, word: &str) -> Option<Color> {
    let width = buffer.area.width as usize;
    for y in 0..buffer.area.height {
        let row: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect();
        if !row.contains(on_line) {
            continue;
        }
        let cells: Vec<&str> = (0..width as u16).map(|x| buffer[(x, y)].symbol()).collect();
        let chars: Vec<String> = cells.iter().map(|s| s.to_string()).collect();
        let joined = chars.concat();
        let Some(byte) = joined.find(word) else {
            continue;
        };
        // Map the byte index back to a cell index (one symbol per cell here).
        let mut seen = 0;
        for (x, c) in chars.iter().enumerate() {
            if seen == byte {
                return Some(buffer[(x as u16, y)].fg);
            }
            seen += c.len();
        }
    }
    None
}

#[test]
fn building_with_waits() {
    let t = render(&building(), &app(), 100, 30);
    insta::assert_snapshot!("building", t.backend());
}

#[test]
fn error_with_message() {
    let mut a = app();
    a.selected = 2;
    a.scope = Scope::Selected;
    a.focus = Focus::Logs;
    let t = render(&failed(), &a, 100, 30);
    insta::assert_snapshot!("error_with_message", t.backend());
    let buf = t.backend().buffer();
    assert_eq!(color_of(buf, "▶ users", "failed"), Some(Color::Red));
    assert_eq!(color_of(buf, "postgres", "waiting"), Some(Color::Yellow));
}

#[test]
fn all_ready_with_forwards_and_update_time() {
    let t = render(&ready(), &app(), 100, 30);
    insta::assert_snapshot!("all_ready", t.backend());
    let buf = t.backend().buffer();
    assert_eq!(color_of(buf, "users ", "ready"), Some(Color::Green));
    assert_eq!(color_of(buf, "tether up", "3/3 ready"), Some(Color::Green));
}

#[test]
fn a_live_update_says_under_its_resource_what_it_synced() {
    let mut s = ready();
    s.apply(&Event::Synced {
        resource: "users".into(),
        report: std::sync::Arc::new(crate::engine::live::SyncReport::example()),
    });
    let t = render(&s, &app(), 100, 30);
    insta::assert_snapshot!("live_update", t.backend());
    let buf = t.backend().buffer();
    assert_eq!(
        color_of(
            buf,
            "↳ synced",
            "synced 1 file (src/routes.rs → /users via host build)"
        ),
        Some(Color::DarkGray)
    );
}

#[test]
fn narrow_80x24_stays_readable() {
    let t = render(&ready(), &app(), 80, 24);
    insta::assert_snapshot!("narrow_80x24", t.backend());
    let text = format!("{}", t.backend());
    assert!(text.contains("users"));
    assert!(text.contains("ready"));
    assert!(text.contains("http://localhost:8001"));
    assert!(text.contains("4.2s"), "the save→serving time is shown");
}

#[test]
fn narrow_80x24_error_detail() {
    let mut a = app();
    a.selected = 2;
    a.scope = Scope::Selected;
    let t = render(&failed(), &a, 80, 24);
    insta::assert_snapshot!("narrow_80x24_error", t.backend());
}

#[test]
fn held_logs_with_a_filter() {
    let s = ready();
    let mut a = app();
    a.focus = Focus::Logs;
    a.log_rows = 8;
    a.filter = "users".into();
    let effect = a.update(super::app::Action::PageUp, &s);
    assert!(effect.is_some(), "holding asks for history");
    let t = render(&s, &a, 80, 24);
    insta::assert_snapshot!("held_filtered", t.backend());
}

#[test]
fn help_and_quit_overlays() {
    let mut a = app();
    a.overlay = Overlay::Help;
    let t = render(&ready(), &a, 80, 24);
    insta::assert_snapshot!("help", t.backend());
    a.overlay = Overlay::Quit;
    let t = render(&ready(), &a, 80, 24);
    insta::assert_snapshot!("quit", t.backend());
}

#[test]
fn tiny_and_resized_terminals_do_not_panic() {
    let s = failed();
    let mut a = app();
    a.scope = Scope::Selected;
    a.selected = 2;
    for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10), (200, 60)] {
        render(&s, &a, w, h);
    }
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| view::draw(f, &s, &a)).unwrap();
    terminal.backend_mut().resize(60, 15);
    terminal.draw(|f| view::draw(f, &s, &a)).unwrap();
    assert_eq!(terminal.backend().buffer().area.width, 60);
}

#[test]
fn a_resource_shown_alone_has_its_status_panel() {
    let mut s = ready();
    apply(
        &mut s,
        [Event::Status {
            resource: "gateway".into(),
            text: "partition  committed  end  lag\n0          120        122  2\ntotal lag 2"
                .into(),
        }],
    );
    let mut a = app();
    a.selected = 0;
    a.scope = Scope::Selected;
    let t = render(&s, &a, 80, 24);
    insta::assert_snapshot!("status_panel", t.backend());
}
