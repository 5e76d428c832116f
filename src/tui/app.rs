//! The TUI's own state, none of it the engine's: which resource is selected, which pane
//! has the keys, which logs are shown, the filter, and whether the log pane follows new
//! lines or holds still for scrolling back. Keys become [`Action`]s, [`App::update`]
//! applies them and returns at most one [`Effect`] for the runner to carry out (a
//! trigger, a history read, the exit), so all of it is tested without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::{
    engine::State,
    logs::LogLine,
    logs_history::{Cursor, Entry, Page},
};

/// Lines read from the on-disk history per step back: at least what memory holds, so
/// the first page covers everything on screen.
pub const HISTORY_PAGE: usize = crate::engine::state::LOG_LINES_IN_MEMORY;
/// The most lines a held log pane keeps; older ones stay on disk (`.tether/logs/`).
pub const MAX_SCROLLBACK: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Resources,
    Logs,
}

/// Whose logs the log pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Selected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// "keep what is deployed or remove it?"
    Quit,
}

/// What a key means, once the mode it was pressed in is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    /// Enter: show the selected resource's logs and move the keys there.
    Focus,
    /// Esc: step back out (logs → list → all logs).
    Back,
    SwitchFocus,
    Trigger,
    /// `+` / `-`: one replica more or fewer for the selected resource.
    Scale(i32),
    ToggleScope,
    ToggleFollow,
    Help,
    CloseOverlay,
    Quit,
    Keep,
    Remove,
    FilterStart,
    FilterInput(char),
    FilterBackspace,
    FilterApply,
    FilterClear,
}

/// Work for the runner; the app itself does no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Trigger(String),
    /// Scale the resource's workload by this many replicas.
    Scale {
        resource: String,
        by: i32,
    },
    /// Read a page of history for the held log pane; `generation` ties the answer to it.
    LoadHistory {
        resource: Option<String>,
        before: Option<Cursor>,
        generation: u64,
    },
    Exit(Exit),
}

/// How the developer chose to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Leave what is deployed running.
    Keep,
    /// Remove it, as `tether down` does.
    Remove,
}

/// A log pane held still for scrolling back: a copy of the lines, so new ones do not
/// move the view.
#[derive(Debug, Clone, Default)]
pub struct Scrollback {
    /// Oldest first.
    pub lines: Vec<LogLine>,
    /// Matching lines below the bottom of the view.
    pub offset: usize,
    /// Where older lines continue on disk; `None` when all are loaded.
    pub older: Option<Cursor>,
    pub loading: bool,
    /// Set when the first page from disk has replaced the in-memory copy.
    pub from_disk: bool,
    generation: u64,
}

#[derive(Debug, Clone)]
pub struct App {
    /// What `up` runs against, for the title bar.
    pub title: String,
    pub selected: usize,
    pub focus: Focus,
    pub scope: Scope,
    pub filter: String,
    pub editing_filter: bool,
    /// `None` while following new lines.
    pub scrollback: Option<Scrollback>,
    pub overlay: Overlay,
    /// The laptop's connect session, for the title bar, while one runs.
    pub connect: Option<String>,
    /// A short note for the title bar (a trigger queued, a history error).
    pub message: Option<String>,
    /// Rows of the log pane at the last draw: the size of a page.
    pub log_rows: usize,
    generation: u64,
}

impl App {
    pub fn new(title: impl Into<String>) -> App {
        App {
            title: title.into(),
            connect: None,
            selected: 0,
            focus: Focus::Resources,
            scope: Scope::All,
            filter: String::new(),
            editing_filter: false,
            scrollback: None,
            overlay: Overlay::None,
            message: None,
            log_rows: 10,
            generation: 0,
        }
    }

    /// What `key` means in the current mode.
    pub fn action(&self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match self.overlay {
            Overlay::Quit => {
                return match key.code {
                    KeyCode::Char('k' | 'K') => Some(Action::Keep),
                    KeyCode::Char('c') if ctrl => Some(Action::Keep),
                    KeyCode::Char('d' | 'D') => Some(Action::Remove),
                    KeyCode::Esc | KeyCode::Char('n' | 'q') => Some(Action::CloseOverlay),
                    _ => None,
                };
            }
            Overlay::Help => return Some(Action::CloseOverlay),
            Overlay::None => {}
        }
        if self.editing_filter {
            return match key.code {
                KeyCode::Enter => Some(Action::FilterApply),
                KeyCode::Esc => Some(Action::FilterClear),
                KeyCode::Char('c') if ctrl => Some(Action::FilterClear),
                KeyCode::Backspace => Some(Action::FilterBackspace),
                KeyCode::Char(c) if !ctrl => Some(Action::FilterInput(c)),
                _ => None,
            };
        }
        Some(match key.code {
            KeyCode::Char('c') if ctrl => Action::Quit,
            KeyCode::Char('u' | 'b') if ctrl => Action::PageUp,
            KeyCode::Char('d' | 'f') if ctrl => Action::PageDown,
            _ if ctrl => return None,
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char('?') => Action::Help,
            KeyCode::Char('j') | KeyCode::Down => Action::Down,
            KeyCode::Char('k') | KeyCode::Up => Action::Up,
            KeyCode::Char('g') | KeyCode::Home => Action::Top,
            KeyCode::Char('G') | KeyCode::End => Action::Bottom,
            KeyCode::PageUp => Action::PageUp,
            KeyCode::PageDown => Action::PageDown,
            KeyCode::Enter => Action::Focus,
            KeyCode::Esc => Action::Back,
            KeyCode::Tab | KeyCode::BackTab => Action::SwitchFocus,
            KeyCode::Char('r') => Action::Trigger,
            KeyCode::Char('+' | '=') => Action::Scale(1),
            KeyCode::Char('-') => Action::Scale(-1),
            KeyCode::Char('l') => Action::ToggleScope,
            KeyCode::Char('f') => Action::ToggleFollow,
            KeyCode::Char('/') => Action::FilterStart,
            _ => return None,
        })
    }

    /// Applies `action`; `state` is the engine's snapshot, read only.
    pub fn update(&mut self, action: Action, state: &State) -> Option<Effect> {
        let count = state.resources.len();
        self.selected = self.selected.min(count.saturating_sub(1));
        if !matches!(action, Action::Trigger | Action::Scale(_)) {
            self.message = None;
        }
        match action {
            Action::Up | Action::Down if self.focus == Focus::Resources => {
                let before = self.selected;
                self.selected = match action {
                    Action::Up => self.selected.saturating_sub(1),
                    _ => (self.selected + 1).min(count.saturating_sub(1)),
                };
                if before != self.selected && self.scope == Scope::Selected {
                    self.follow();
                }
                None
            }
            Action::Up => self.scroll_up(1, state),
            Action::Down => self.scroll_down(1),
            Action::PageUp => self.scroll_up(self.page(), state),
            Action::PageDown => self.scroll_down(self.page()),
            Action::Top if self.focus == Focus::Resources => {
                self.selected = 0;
                None
            }
            Action::Bottom if self.focus == Focus::Resources => {
                self.selected = count.saturating_sub(1);
                None
            }
            Action::Top => self.scroll_up(usize::MAX, state),
            Action::Bottom => {
                self.follow();
                None
            }
            Action::Focus => {
                self.scope = Scope::Selected;
                self.focus = Focus::Logs;
                self.follow();
                None
            }
            Action::Back => {
                match self.focus {
                    Focus::Logs => self.focus = Focus::Resources,
                    Focus::Resources => {
                        self.scope = Scope::All;
                        self.filter.clear();
                        self.follow();
                    }
                }
                None
            }
            Action::SwitchFocus => {
                self.focus = match self.focus {
                    Focus::Resources => Focus::Logs,
                    Focus::Logs => Focus::Resources,
                };
                None
            }
            Action::Trigger => self.selected_name(state).map(Effect::Trigger),
            Action::Scale(by) => self
                .selected_name(state)
                .map(|resource| Effect::Scale { resource, by }),
            Action::ToggleScope => {
                self.scope = match self.scope {
                    Scope::All => Scope::Selected,
                    Scope::Selected => Scope::All,
                };
                self.follow();
                None
            }
            Action::ToggleFollow => {
                if self.scrollback.is_some() {
                    self.follow();
                    None
                } else {
                    self.hold(state)
                }
            }
            Action::Help => {
                self.overlay = Overlay::Help;
                None
            }
            Action::CloseOverlay => {
                self.overlay = Overlay::None;
                None
            }
            Action::Quit => {
                self.overlay = Overlay::Quit;
                None
            }
            Action::Keep => Some(Effect::Exit(Exit::Keep)),
            Action::Remove => Some(Effect::Exit(Exit::Remove)),
            Action::FilterStart => {
                self.editing_filter = true;
                None
            }
            Action::FilterInput(c) => {
                self.filter.push(c);
                self.reset_offset();
                None
            }
            Action::FilterBackspace => {
                self.filter.pop();
                self.reset_offset();
                None
            }
            Action::FilterApply => {
                self.editing_filter = false;
                None
            }
            Action::FilterClear => {
                self.editing_filter = false;
                self.filter.clear();
                self.reset_offset();
                None
            }
        }
    }

    /// A page of history arrived for the held pane made at `generation`.
    pub fn history_loaded(&mut self, generation: u64, page: Result<Page, String>) {
        let Some(sb) = self.scrollback.as_mut() else {
            return;
        };
        if sb.generation != generation {
            return;
        }
        sb.loading = false;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                sb.older = None;
                self.message = Some(format!("log history: {e}"));
                return;
            }
        };
        let empty = page.entries.is_empty();
        let lines = page.entries.into_iter().map(|e: Entry| e.line);
        if !sb.from_disk {
            // The first page replaces the in-memory copy it extends; an empty history
            // (nothing written yet) keeps the copy.
            sb.from_disk = true;
            if empty {
                sb.older = None;
                return;
            }
            sb.lines = lines.collect();
        } else {
            let mut older: Vec<LogLine> = lines.collect();
            older.append(&mut sb.lines);
            sb.lines = older;
        }
        sb.older = page.older;
        if sb.lines.len() >= MAX_SCROLLBACK {
            let cut = sb.lines.len() - MAX_SCROLLBACK;
            sb.lines.drain(..cut);
            sb.older = None;
            self.message = Some(format!(
                "showing the last {MAX_SCROLLBACK} lines; older ones are in .tether/logs/"
            ));
        }
    }

    /// A short note for the title bar.
    pub fn note(&mut self, message: impl Into<String>) {
        self.message = Some(message.into());
    }

    /// The resource whose logs are shown, or `None` for all.
    pub fn scope_resource<'s>(&self, state: &'s State) -> Option<&'s str> {
        match self.scope {
            Scope::All => None,
            Scope::Selected => self.selected_name_ref(state),
        }
    }

    pub fn selected_name_ref<'s>(&self, state: &'s State) -> Option<&'s str> {
        state
            .resources
            .keys()
            .nth(self.selected)
            .map(String::as_str)
    }

    fn selected_name(&self, state: &State) -> Option<String> {
        self.selected_name_ref(state).map(str::to_owned)
    }

    /// Whether `line` is shown: in scope and matching the filter (ASCII case ignored).
    pub fn shows(&self, line: &LogLine, scope: Option<&str>) -> bool {
        scope.is_none_or(|r| r == line.resource)
            && (self.filter.is_empty()
                || contains_ignore_case(&line.text, &self.filter)
                || contains_ignore_case(&line.pod, &self.filter)
                || (scope.is_none() && contains_ignore_case(&line.resource, &self.filter)))
    }

    fn page(&self) -> usize {
        self.log_rows.max(2) - 1
    }

    fn follow(&mut self) {
        self.scrollback = None;
    }

    fn reset_offset(&mut self) {
        if let Some(sb) = self.scrollback.as_mut() {
            sb.offset = 0;
        }
    }

    /// Holds the pane still at the bottom: a copy of the shown lines from memory now,
    /// and a request for the same lines and older ones from disk.
    fn hold(&mut self, state: &State) -> Option<Effect> {
        let scope = self.scope_resource(state).map(str::to_owned);
        self.generation += 1;
        self.scrollback = Some(Scrollback {
            lines: state
                .logs
                .iter()
                .filter(|l| scope.as_deref().is_none_or(|r| r == l.resource))
                .cloned()
                .collect(),
            offset: 0,
            older: None,
            loading: true,
            from_disk: false,
            generation: self.generation,
        });
        Some(Effect::LoadHistory {
            resource: scope,
            before: None,
            generation: self.generation,
        })
    }

    fn scroll_up(&mut self, by: usize, state: &State) -> Option<Effect> {
        let first = if self.scrollback.is_none() {
            self.hold(state)
        } else {
            None
        };
        let matching = self.matching_held(state);
        let rows = self.log_rows;
        let resource = self.scope_resource(state).map(str::to_owned);
        let sb = self.scrollback.as_mut()?;
        let max = matching.saturating_sub(rows);
        sb.offset = sb.offset.saturating_add(by).min(max);
        if first.is_some() {
            return first;
        }
        // At the top of what is loaded: fetch older lines.
        if sb.offset == max && !sb.loading && sb.from_disk {
            if let Some(before) = sb.older.clone() {
                sb.loading = true;
                return Some(Effect::LoadHistory {
                    resource,
                    before: Some(before),
                    generation: sb.generation,
                });
            }
        }
        None
    }

    fn scroll_down(&mut self, by: usize) -> Option<Effect> {
        if let Some(sb) = self.scrollback.as_mut() {
            sb.offset = sb.offset.saturating_sub(by);
        }
        None
    }

    fn matching_held(&self, state: &State) -> usize {
        let scope = self.scope_resource(state);
        self.scrollback.as_ref().map_or(0, |sb| {
            sb.lines.iter().filter(|l| self.shows(l, scope)).count()
        })
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::Event;

    fn state() -> State {
        let mut s = State::new(BTreeMap::from([
            ("db".to_owned(), vec![]),
            ("orders".to_owned(), vec!["orders".to_owned()]),
            ("users".to_owned(), vec!["users".to_owned()]),
        ]));
        for i in 0..30 {
            let resource = if i % 3 == 0 { "users" } else { "orders" };
            s.apply(&Event::Log(LogLine {
                resource: resource.into(),
                pod: format!("{resource}-7d9c-x2x4q"),
                container: "app".into(),
                text: format!("line {i}{}", if i == 9 { " ERROR boom" } else { "" }),
            }));
        }
        s
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn press(app: &mut App, state: &State, code: KeyCode) -> Option<Effect> {
        let action = app.action(key(code))?;
        app.update(action, state)
    }

    #[test]
    fn j_k_and_arrows_move_the_selection_within_bounds() {
        let s = state();
        let mut app = App::new("t");
        press(&mut app, &s, KeyCode::Char('k'));
        assert_eq!(app.selected, 0);
        press(&mut app, &s, KeyCode::Char('j'));
        press(&mut app, &s, KeyCode::Down);
        press(&mut app, &s, KeyCode::Down);
        assert_eq!(app.selected, 2);
        press(&mut app, &s, KeyCode::Up);
        assert_eq!(app.selected, 1);
        press(&mut app, &s, KeyCode::Char('G'));
        assert_eq!(app.selected, 2);
        press(&mut app, &s, KeyCode::Char('g'));
        assert_eq!(app.selected, 0);
    }

    #[test]
    fn r_triggers_the_selected_resource() {
        let s = state();
        let mut app = App::new("t");
        press(&mut app, &s, KeyCode::Char('j'));
        assert_eq!(
            press(&mut app, &s, KeyCode::Char('r')),
            Some(Effect::Trigger("orders".into()))
        );
    }

    #[test]
    fn plus_and_minus_scale_the_selected_resource() {
        let s = state();
        let mut app = App::new("t");
        press(&mut app, &s, KeyCode::Char('j'));
        assert_eq!(
            press(&mut app, &s, KeyCode::Char('+')),
            Some(Effect::Scale {
                resource: "orders".into(),
                by: 1
            })
        );
        assert_eq!(
            press(&mut app, &s, KeyCode::Char('-')),
            Some(Effect::Scale {
                resource: "orders".into(),
                by: -1
            })
        );
    }

    #[test]
    fn q_asks_and_k_keeps_d_removes_esc_stays() {
        let s = state();
        let mut app = App::new("t");
        assert_eq!(press(&mut app, &s, KeyCode::Char('q')), None);
        assert_eq!(app.overlay, Overlay::Quit);
        // Other keys do nothing while asking.
        assert_eq!(press(&mut app, &s, KeyCode::Char('r')), None);
        assert_eq!(press(&mut app, &s, KeyCode::Esc), None);
        assert_eq!(app.overlay, Overlay::None);
        press(&mut app, &s, KeyCode::Char('q'));
        assert_eq!(
            press(&mut app, &s, KeyCode::Char('k')),
            Some(Effect::Exit(Exit::Keep))
        );
        let mut app = App::new("t");
        press(&mut app, &s, KeyCode::Char('q'));
        assert_eq!(
            press(&mut app, &s, KeyCode::Char('d')),
            Some(Effect::Exit(Exit::Remove))
        );
        // Ctrl-C asks too, and a second Ctrl-C keeps.
        let mut app = App::new("t");
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        let a = app.action(ctrl_c).unwrap();
        app.update(a, &s);
        assert_eq!(app.overlay, Overlay::Quit);
        let a = app.action(ctrl_c).unwrap();
        assert_eq!(app.update(a, &s), Some(Effect::Exit(Exit::Keep)));
    }

    #[test]
    fn enter_focuses_the_resource_and_l_toggles_the_scope() {
        let s = state();
        let mut app = App::new("t");
        press(&mut app, &s, KeyCode::Char('j'));
        press(&mut app, &s, KeyCode::Char('j'));
        press(&mut app, &s, KeyCode::Enter);
        assert_eq!(app.scope, Scope::Selected);
        assert_eq!(app.focus, Focus::Logs);
        assert_eq!(app.scope_resource(&s), Some("users"));
        // In the log pane, j/k scroll instead of moving the selection.
        press(&mut app, &s, KeyCode::Char('j'));
        assert_eq!(app.selected, 2);
        press(&mut app, &s, KeyCode::Char('l'));
        assert_eq!(app.scope, Scope::All);
        press(&mut app, &s, KeyCode::Esc);
        assert_eq!(app.focus, Focus::Resources);
        press(&mut app, &s, KeyCode::Char('?'));
        assert_eq!(app.overlay, Overlay::Help);
        press(&mut app, &s, KeyCode::Char('x'));
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn slash_edits_a_filter_that_keys_do_not_escape() {
        let s = state();
        let mut app = App::new("t");
        press(&mut app, &s, KeyCode::Char('/'));
        for c in "error".chars() {
            press(&mut app, &s, KeyCode::Char(c));
        }
        // `q` is text while editing, not quit.
        press(&mut app, &s, KeyCode::Char('q'));
        press(&mut app, &s, KeyCode::Backspace);
        assert_eq!(app.overlay, Overlay::None);
        assert_eq!(app.filter, "error");
        press(&mut app, &s, KeyCode::Enter);
        assert!(!app.editing_filter);
        let shown: Vec<_> = s.logs.iter().filter(|l| app.shows(l, None)).collect();
        assert_eq!(shown.len(), 1);
        assert!(shown[0].text.contains("ERROR boom"));
        press(&mut app, &s, KeyCode::Char('/'));
        press(&mut app, &s, KeyCode::Esc);
        assert_eq!(app.filter, "");
    }

    #[test]
    fn scrolling_up_holds_the_pane_and_asks_for_history() {
        let s = state();
        let mut app = App::new("t");
        app.log_rows = 5;
        app.focus = Focus::Logs;
        let effect = press(&mut app, &s, KeyCode::Char('k'));
        let Some(Effect::LoadHistory {
            resource: None,
            before: None,
            generation,
        }) = effect
        else {
            panic!("{effect:?}");
        };
        let sb = app.scrollback.as_ref().unwrap();
        assert_eq!((sb.lines.len(), sb.offset), (30, 1));
        // The disk's first page replaces the copy; at its top, older lines are asked for.
        let entries: Vec<Entry> = s
            .logs
            .iter()
            .map(|l| Entry {
                at: String::new(),
                line: l.clone(),
            })
            .collect();
        let cursor = Cursor::default();
        app.history_loaded(
            generation,
            Ok(Page {
                entries,
                older: Some(cursor.clone()),
            }),
        );
        let effect = press(&mut app, &s, KeyCode::Char('g'));
        assert_eq!(app.scrollback.as_ref().unwrap().offset, 25);
        assert_eq!(
            effect,
            Some(Effect::LoadHistory {
                resource: None,
                before: Some(cursor),
                generation,
            })
        );
        // An answer for an older hold is ignored; f follows again.
        app.history_loaded(generation + 7, Ok(Page::default()));
        assert!(app.scrollback.as_ref().unwrap().loading);
        press(&mut app, &s, KeyCode::Char('f'));
        assert!(app.scrollback.is_none());
        // Scrolling down to the bottom stays held until G.
        press(&mut app, &s, KeyCode::PageUp);
        press(&mut app, &s, KeyCode::PageDown);
        assert!(app.scrollback.is_some());
        press(&mut app, &s, KeyCode::Char('G'));
        assert!(app.scrollback.is_none());
    }

    #[test]
    fn releases_are_ignored() {
        let app = App::new("t");
        let mut k = key(KeyCode::Char('q'));
        k.kind = KeyEventKind::Release;
        assert_eq!(app.action(k), None);
    }
}
