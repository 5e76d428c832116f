//! The workshop's terminal screen: the steps with their marks, the selected step's
//! commands and check, its explanation on `e`. [`draw`] only reads a [`Screen`];
//! [`Screen::key`] is the only writer, and the command's loop feeds it check results.

use crossterm::event::KeyCode;
use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, List, ListItem, Paragraph, Wrap},
};

use super::{Outcome, Workshop};

/// A step's mark on the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Not checked yet in this run.
    Unknown,
    Done(Outcome),
}

/// What the screen shows.
#[derive(Debug, Clone)]
pub struct Screen {
    pub workshop: Workshop,
    pub marks: Vec<Mark>,
    /// The shown step, 0-based.
    pub selected: usize,
    /// Whether the step's prose is shown.
    pub explain: bool,
    pub quit: bool,
}

/// The keys, for the handler and the footer alike.
const KEYS: &[(char, &str)] = &[
    ('n', "next"),
    ('p', "previous"),
    ('e', "explain"),
    ('q', "quit"),
];

impl Screen {
    /// A screen at `current` (1-based) with this run's results so far.
    pub fn new(workshop: Workshop, results: &[Outcome], current: usize) -> Screen {
        let marks = (0..workshop.steps.len())
            .map(|i| results.get(i).cloned().map_or(Mark::Unknown, Mark::Done))
            .collect();
        let selected = current
            .saturating_sub(1)
            .min(workshop.steps.len().saturating_sub(1));
        Screen {
            workshop,
            marks,
            selected,
            explain: false,
            quit: false,
        }
    }

    pub fn key(&mut self, code: KeyCode) {
        let last = self.workshop.steps.len().saturating_sub(1);
        match code {
            KeyCode::Char('n') | KeyCode::Right | KeyCode::Down => {
                self.selected = (self.selected + 1).min(last)
            }
            KeyCode::Char('p') | KeyCode::Left | KeyCode::Up => {
                self.selected = self.selected.saturating_sub(1)
            }
            KeyCode::Char('e') => self.explain = !self.explain,
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            _ => {}
        }
    }

    /// A fresh result for step `index` (0-based).
    pub fn checked(&mut self, index: usize, outcome: Outcome) {
        if let Some(m) = self.marks.get_mut(index) {
            *m = Mark::Done(outcome);
        }
    }
}

pub fn draw(frame: &mut Frame, s: &Screen) {
    let [body, footer] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let [list_area, step_area] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);

    let items: Vec<ListItem> = s
        .workshop
        .steps
        .iter()
        .zip(&s.marks)
        .enumerate()
        .map(|(i, (step, mark))| {
            let (sign, colour) = match mark {
                Mark::Unknown => ("·", Color::DarkGray),
                Mark::Done(Outcome::Pass) => ("✓", Color::Green),
                Mark::Done(Outcome::Fail { .. }) => ("✗", Color::Red),
            };
            let mut title = Style::default();
            if i == s.selected {
                title = title.add_modifier(Modifier::BOLD | Modifier::REVERSED);
            }
            ListItem::new(Line::from(vec![
                Span::styled(format!("{sign} "), Style::default().fg(colour)),
                Span::styled(format!("{}. {}", i + 1, step.title), title),
            ]))
        })
        .collect();
    frame.render_widget(
        List::new(items).block(
            Block::default()
                .borders(Borders::ALL)
                .title(s.workshop.title.as_str()),
        ),
        list_area,
    );

    let mut lines: Vec<Line> = Vec::new();
    if let Some(step) = s.workshop.steps.get(s.selected) {
        if s.explain && !step.prose.trim().is_empty() {
            for paragraph in paragraphs(&step.prose) {
                lines.push(Line::from(paragraph));
                lines.push(Line::from(""));
            }
        }
        lines.push(Line::styled(
            "Type:",
            Style::default().add_modifier(Modifier::BOLD),
        ));
        for c in &step.commands {
            lines.push(Line::styled(
                format!("  $ {c}"),
                Style::default().fg(Color::Cyan),
            ));
        }
        lines.push(Line::from(""));
        match s.marks.get(s.selected) {
            Some(Mark::Done(Outcome::Pass)) => lines.push(Line::styled(
                "✓ check passes",
                Style::default().fg(Color::Green),
            )),
            Some(Mark::Done(Outcome::Fail { what })) => {
                lines.push(Line::styled(
                    format!("✗ {what}"),
                    Style::default().fg(Color::Red),
                ));
                if !step.fix.trim().is_empty() {
                    lines.push(Line::from(format!("fix: {}", step.fix.trim())));
                }
            }
            _ => lines.push(Line::from("· checking…")),
        }
    }
    let title = format!(
        "{}/{}: {}",
        s.selected + 1,
        s.workshop.steps.len(),
        s.workshop
            .steps
            .get(s.selected)
            .map_or("", |st| st.title.as_str())
    );
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        step_area,
    );

    let hint = KEYS
        .iter()
        .map(|(k, what)| format!("{k} {what}"))
        .collect::<Vec<_>>()
        .join("  ");
    frame.render_widget(
        Paragraph::new(format!("{hint}   (the check re-runs every second)")),
        footer,
    );
}

/// The prose as paragraphs (blank lines between them), each on one line for the
/// paragraph widget to wrap at the screen's width rather than at the file's.
fn paragraphs(prose: &str) -> Vec<String> {
    prose
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}
