//! Drawing: the engine's [`State`] and the UI's [`App`] in, a frame out. Reads only and
//! decides nothing, so every screen is a snapshot test over a `State` value.
//!
//! Layout, top to bottom: a title bar (what `up` runs against, how many resources are
//! ready, the last note), the resource list (build, deploy, pods, restarts, save→serving
//! time, forwards; a second line per resource for why it waits or failed), the full
//! reason of the shown resource when its logs are shown, the log pane, and a key hint.

use std::time::Duration;

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span, Text},
    widgets::{Block, BorderType, Clear, List, ListItem, ListState, Paragraph, Wrap},
};

use super::app::{App, Focus, Overlay, Scope};
use crate::{
    engine::{
        State,
        state::{Phase, ResourceView},
    },
    forward::Health,
    logs::LogLine,
};

const OK: Color = Color::Green;
const BUSY: Color = Color::Yellow;
const BAD: Color = Color::Red;
const DIM: Color = Color::DarkGray;
const FOCUS: Color = Color::Cyan;

/// Fixed column widths of the resource list; the forwards take what is left.
const BUILD_W: usize = 13;
const DEPLOY_W: usize = 9;
const PODS_W: usize = 5;
const RESTARTS_W: usize = 3;
const UPDATE_W: usize = 7;
/// Rows the log pane keeps however many resources there are.
const MIN_LOG_ROWS: u16 = 4;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy)]
pub struct Areas {
    pub title: Rect,
    pub resources: Rect,
    /// Zero height when there is no reason to show.
    pub detail: Rect,
    pub logs: Rect,
    pub footer: Rect,
}

pub fn layout(area: Rect, state: &State, app: &App) -> Areas {
    let body = area.height.saturating_sub(2);
    let wanted_list = 3 + state
        .resources
        .values()
        .map(|r| 1 + u16::from(reason(r).is_some()) + replica_rows(r))
        .sum::<u16>();
    let list_h = wanted_list.min((body / 2).max(5)).min(body);
    let detail_h = match detail(state, app) {
        Some((_, text, _)) => {
            let width = area.width.saturating_sub(2).max(1) as usize;
            let lines: usize = text
                .lines()
                .map(|l| l.chars().count().div_ceil(width).max(1))
                .sum();
            let room = body.saturating_sub(list_h + MIN_LOG_ROWS + 2);
            (lines as u16 + 2).min(10).min(room)
        }
        None => 0,
    };
    let [title, resources, detail, logs, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(list_h),
        Constraint::Length(detail_h),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    Areas {
        title,
        resources,
        detail,
        logs,
        footer,
    }
}

/// Lines the log pane shows at `area`: a page for scrolling.
pub fn log_rows(area: Rect, state: &State, app: &App) -> usize {
    layout(area, state, app).logs.height.saturating_sub(2) as usize
}

pub fn draw(frame: &mut Frame, state: &State, app: &App) {
    let areas = layout(frame.area(), state, app);
    draw_title(frame, areas.title, state, app);
    draw_resources(frame, areas.resources, state, app);
    if let Some((name, text, color)) = detail(state, app) {
        let block = Block::bordered()
            .border_type(BorderType::Rounded)
            .border_style(Style::new().fg(color))
            .title(format!(" {name} "));
        let p = Paragraph::new(Text::from(text))
            .style(Style::new().fg(color))
            .wrap(Wrap { trim: false })
            .block(block);
        frame.render_widget(p, areas.detail);
    }
    draw_logs(frame, areas.logs, state, app);
    draw_footer(frame, areas.footer, app);
    match app.overlay {
        Overlay::None => {}
        Overlay::Help => draw_help(frame),
        Overlay::Quit => draw_quit(frame),
    }
}

fn draw_title(frame: &mut Frame, area: Rect, state: &State, app: &App) {
    let total = state.resources.len();
    let ready = state
        .resources
        .values()
        .filter(|r| r.deploy == Phase::Ok)
        .count();
    let failed = state
        .resources
        .values()
        .any(|r| r.deploy == Phase::Failed || r.build == Phase::Failed);
    let color = if failed {
        BAD
    } else if ready == total {
        OK
    } else {
        BUSY
    };
    let mut right = vec![Span::styled(
        format!("{ready}/{total} ready"),
        Style::new().fg(color).add_modifier(Modifier::BOLD),
    )];
    if let Some(m) = &app.message {
        right.insert(0, Span::styled(format!("{m}  "), Style::new().fg(FOCUS)));
    }
    let right = Line::from(right);
    let right_w = (right.width() as u16 + 1).min(area.width);
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_w)]).areas(area);
    let mut left = vec![
        Span::styled(" tether up", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(format!(" · {}", app.title), Style::new().fg(DIM)),
    ];
    if let Some(c) = &app.connect {
        left.push(Span::styled(format!(" · {c}"), Style::new().fg(OK)));
    }
    let left = Line::from(left);
    frame.render_widget(Paragraph::new(left), left_area);
    frame.render_widget(Paragraph::new(right), right_area);
}

fn draw_resources(frame: &mut Frame, area: Rect, state: &State, app: &App) {
    let focused = app.focus == Focus::Resources && app.overlay == Overlay::None;
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(if focused { FOCUS } else { DIM }))
        .title(" resources ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let [header_area, list_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    let name_w = state
        .resources
        .keys()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 24);
    let header = format!(
        "  {:<name_w$} {:<BUILD_W$} {:<DEPLOY_W$} {:<PODS_W$} {:>RESTARTS_W$} {:>UPDATE_W$}  FORWARDS",
        "NAME", "BUILD", "DEPLOY", "PODS", "RST", "UPDATE"
    );
    frame.render_widget(
        Paragraph::new(Line::styled(
            header,
            Style::new().fg(DIM).add_modifier(Modifier::BOLD),
        )),
        header_area,
    );
    let items: Vec<ListItem> = state
        .resources
        .iter()
        .map(|(name, r)| resource_item(name, r, name_w))
        .collect();
    let highlight = if focused {
        Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    let list = List::new(items)
        .highlight_symbol("▶ ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .highlight_style(highlight);
    let mut selection = ListState::default().with_selected(
        (!state.resources.is_empty()).then(|| app.selected.min(state.resources.len() - 1)),
    );
    frame.render_stateful_widget(list, list_area, &mut selection);
}

fn resource_item<'a>(name: &'a str, r: &'a ResourceView, name_w: usize) -> ListItem<'a> {
    let (build, build_color) = match r.build {
        _ if r.images.is_empty() => ("-".to_owned(), DIM),
        Phase::Pending => ("pending".to_owned(), DIM),
        Phase::Running => match r.building_for {
            Some(d) => (format!("building {}s", d.as_secs()), BUSY),
            None => ("building".to_owned(), BUSY),
        },
        Phase::Ok => match r.last_build {
            Some(d) => (format!("built {}", secs(d)), OK),
            None => ("up to date".to_owned(), OK),
        },
        Phase::Failed => ("failed".to_owned(), BAD),
    };
    let (deploy, deploy_color) = match r.deploy {
        Phase::Pending => ("pending", DIM),
        Phase::Running if r.waiting_for.is_some() => ("waiting", BUSY),
        Phase::Running => ("deploying", BUSY),
        Phase::Ok => ("ready", OK),
        Phase::Failed => ("failed", BAD),
    };
    let (pods, pods_color) = match r.pods {
        p if p.total == 0 => ("-".to_owned(), DIM),
        p if p.ready == p.total => (format!("{}/{}", p.ready, p.total), OK),
        p => (format!("{}/{}", p.ready, p.total), BUSY),
    };
    let restarts_color = if r.pods.restarts > 0 { BUSY } else { DIM };
    let update = r
        .last_update
        .map(|u| secs(u.total))
        .unwrap_or_else(|| "-".to_owned());
    let mut spans = vec![
        Span::styled(
            format!("{name:<name_w$} "),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!("{build:<BUILD_W$} "), Style::new().fg(build_color)),
        Span::styled(
            format!("{deploy:<DEPLOY_W$} "),
            Style::new().fg(deploy_color),
        ),
        Span::styled(format!("{pods:<PODS_W$} "), Style::new().fg(pods_color)),
        Span::styled(
            format!("{:>RESTARTS_W$} ", r.pods.restarts),
            Style::new().fg(restarts_color),
        ),
        Span::raw(format!("{update:>UPDATE_W$}  ")),
    ];
    for (i, (port, health)) in r.forwards.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        let (mark, color) = match health {
            Health::Healthy { .. } => ("●", OK),
            Health::Waiting => ("○", BUSY),
            Health::Unhealthy { .. } => ("✗", BAD),
        };
        spans.push(Span::raw(format!("http://localhost:{port} ")));
        spans.push(Span::styled(mark, Style::new().fg(color)));
    }
    let mut lines = vec![Line::from(spans)];
    if replica_rows(r) > 0 {
        for p in &r.replicas {
            let (mark, color) = if p.ready { ("●", OK) } else { ("○", BUSY) };
            let mut row = vec![
                Span::styled(format!("  {mark} "), Style::new().fg(color)),
                Span::styled(p.pod.clone(), Style::new().fg(DIM)),
            ];
            if p.restarts > 0 {
                row.push(Span::styled(
                    format!("  {} restarts", p.restarts),
                    Style::new().fg(BUSY),
                ));
            }
            lines.push(Line::from(row));
        }
    }
    if let Some((text, color)) = reason(r) {
        let first = text.lines().next().unwrap_or("");
        lines.push(Line::styled(format!("  ↳ {first}"), Style::new().fg(color)));
    }
    ListItem::new(Text::from(lines))
}

/// A row per replica once a resource runs more than one pod: one pod says nothing the
/// PODS column does not.
fn replica_rows(r: &ResourceView) -> u16 {
    match r.replicas.len() {
        0 | 1 => 0,
        n => u16::try_from(n).unwrap_or(u16::MAX),
    }
}

/// Why a resource is not ready, in words: its last error, else what it waits for; for a
/// ready one, what its last change did (a sync, or why it was built instead).
fn reason(r: &ResourceView) -> Option<(&str, Color)> {
    if let Some(e) = &r.last_error {
        return Some((e, BAD));
    }
    match (&r.waiting_for, r.deploy) {
        (Some(w), Phase::Running | Phase::Pending) => Some((w, BUSY)),
        _ => r.last_change.as_deref().map(|c| (c, DIM)),
    }
}

/// The full reason of the shown resource when its logs are shown, and its status panel
/// (`status_cmd`'s output), when it has either.
fn detail<'a>(state: &'a State, app: &App) -> Option<(&'a str, String, Color)> {
    let name = app.scope_resource(state)?;
    let r = state.resources.get(name)?;
    match (reason(r), &r.status) {
        (Some((text, color)), None) => Some((name, clean(text, true), color)),
        (None, Some(status)) => Some((name, clean(status, true), Color::Reset)),
        (Some((text, color)), Some(status)) => Some((
            name,
            format!("{}\n{}", clean(text, true), clean(status, true)),
            color,
        )),
        (None, None) => None,
    }
}

fn draw_logs(frame: &mut Frame, area: Rect, state: &State, app: &App) {
    let scope = app.scope_resource(state);
    let rows = area.height.saturating_sub(2) as usize;
    let focused = app.focus == Focus::Logs && app.overlay == Overlay::None;
    let mut title = vec![Span::raw(format!(
        " logs · {} ",
        match app.scope {
            Scope::All => "all",
            Scope::Selected => scope.unwrap_or("-"),
        }
    ))];
    let shown: Vec<&LogLine> = match &app.scrollback {
        None => {
            title.push(Span::styled("· following ", Style::new().fg(OK)));
            let mut v: Vec<&LogLine> = state
                .logs
                .iter()
                .rev()
                .filter(|l| app.shows(l, scope))
                .take(rows)
                .collect();
            v.reverse();
            v
        }
        Some(sb) => {
            let below = sb.offset;
            title.push(Span::styled(
                if below > 0 {
                    format!("· held, {below} lines below (f follows) ")
                } else {
                    "· held (f follows) ".to_owned()
                },
                Style::new().fg(BUSY),
            ));
            if sb.loading {
                title.push(Span::styled("· loading older… ", Style::new().fg(DIM)));
            }
            let mut v: Vec<&LogLine> = sb
                .lines
                .iter()
                .rev()
                .filter(|l| app.shows(l, scope))
                .skip(below)
                .take(rows)
                .collect();
            v.reverse();
            v
        }
    };
    if !app.filter.is_empty() {
        title.push(Span::styled(
            format!("· /{} ", app.filter),
            Style::new().fg(FOCUS),
        ));
    }
    let lines: Vec<Line> = shown
        .into_iter()
        .map(|l| log_line(l, app.scope == Scope::All))
        .collect();
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(if focused { FOCUS } else { DIM }))
        .title(Line::from(title));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn log_line(l: &LogLine, with_resource: bool) -> Line<'static> {
    let mut spans = Vec::with_capacity(4);
    if with_resource {
        spans.push(Span::styled(
            format!("[{}] ", l.resource),
            Style::new().fg(resource_color(&l.resource)),
        ));
    }
    let pod = l.pod.rsplit('-').next().unwrap_or(&l.pod);
    spans.push(Span::styled(format!("{pod} | "), Style::new().fg(DIM)));
    spans.push(Span::raw(clean(&l.text, false)));
    Line::from(spans)
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let line = if app.editing_filter {
        Line::from(vec![
            Span::styled(" /", Style::new().fg(FOCUS)),
            Span::raw(app.filter.clone()),
            Span::styled("▏", Style::new().fg(FOCUS)),
            Span::styled("  enter keeps · esc clears", Style::new().fg(DIM)),
        ])
    } else {
        let keys: &[(&str, &str)] = &[
            ("j/k", "move"),
            ("enter", "logs"),
            ("r", "rebuild"),
            ("l", "all/one"),
            ("/", "filter"),
            ("f", "follow"),
            ("?", "help"),
            ("q", "quit"),
        ];
        let mut spans = vec![Span::raw(" ")];
        for (k, what) in keys {
            spans.push(Span::styled(*k, Style::new().add_modifier(Modifier::BOLD)));
            spans.push(Span::styled(format!(" {what}  "), Style::new().fg(DIM)));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

const HELP: &[(&str, &str)] = &[
    ("j/k ↑/↓", "move in the list; scroll in the logs"),
    ("enter", "show the selected resource's logs"),
    ("tab", "switch between the list and the logs"),
    ("esc", "back: logs → list → all logs"),
    ("r", "rebuild and redeploy the selected resource"),
    (
        "+ / -",
        "one replica more / fewer for the selected resource",
    ),
    ("l", "logs of all resources / the selected one"),
    ("/", "filter log lines, by text or pod (enter keeps)"),
    ("PgUp/PgDn", "scroll a page (ctrl-u / ctrl-d)"),
    ("g / G", "oldest line / follow new lines"),
    ("f", "hold the logs still / follow again"),
    ("q", "quit: keep what is deployed, or remove it"),
    ("?", "this help"),
];

fn draw_help(frame: &mut Frame) {
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {k:<10} "),
                    Style::new().fg(FOCUS).add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " UPDATE: from the save to the new version serving",
        Style::new().fg(DIM),
    ));
    lines.push(Line::styled(
        " forwards: ● healthy  ○ waiting for a pod  ✗ failing",
        Style::new().fg(DIM),
    ));
    let area = centered(frame.area(), 62, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(Style::new().fg(FOCUS))
                .title(" keys (any key closes) "),
        ),
        area,
    );
}

fn draw_quit(frame: &mut Frame) {
    let key =
        |k: &'static str| Span::styled(k, Style::new().fg(FOCUS).add_modifier(Modifier::BOLD));
    let lines = vec![
        Line::raw(" Quit tether up. What is deployed:"),
        Line::raw(""),
        Line::from(vec![
            Span::raw("   "),
            key("k"),
            Span::raw("    keep it running"),
        ]),
        Line::from(vec![
            Span::raw("   "),
            key("d"),
            Span::raw("    remove it (as tether down)"),
        ]),
        Line::from(vec![Span::raw("   "), key("esc"), Span::raw("  stay")]),
    ];
    let area = centered(frame.area(), 44, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(Style::new().fg(BUSY))
                .title(" quit "),
        ),
        area,
    );
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A stable colour per resource, so interleaved logs can be told apart.
fn resource_color(name: &str) -> Color {
    const PALETTE: [Color; 6] = [
        Color::Cyan,
        Color::Magenta,
        Color::Blue,
        Color::LightGreen,
        Color::LightMagenta,
        Color::LightBlue,
    ];
    let h = name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    PALETTE[h as usize % PALETTE.len()]
}

/// Text as the terminal should get it: colour escapes from the app's output removed,
/// tabs expanded, other control characters dropped (newlines kept when `multiline`).
fn clean(text: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final, final in '@'..='~'.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\t' => out.push_str("    "),
            '\n' if multiline => out.push('\n'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 100.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
