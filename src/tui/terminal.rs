//! The terminal while the TUI runs: raw mode, the alternate screen and a hidden cursor,
//! put back when the guard drops, when the process panics, and before a forced exit, so
//! the developer's shell is never left broken. While it runs, stderr goes to a file:
//! a diagnostic written to the terminal would stay on screen between the cells ratatui
//! redraws.

use std::{
    fs::File,
    io::{self, Stdout},
    os::fd::OwnedFd,
    path::Path,
    sync::{
        Mutex, Once,
        atomic::{AtomicBool, Ordering},
    },
};

use crossterm::{
    cursor::{Hide, Show},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};

/// Whether the terminal is in the TUI's modes, so restoring happens once.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();
/// The terminal's stderr while it points at the diagnostics file.
static SAVED_STDERR: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// The TUI's terminal; dropping it restores the terminal.
pub struct Tui {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Tui {
    /// Takes over the terminal; stderr goes to `stderr_to` (created or truncated) until
    /// the terminal is restored.
    pub fn enter(stderr_to: Option<&Path>) -> io::Result<Tui> {
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        if let Some(path) = stderr_to {
            redirect_stderr(path)?;
        }
        if let Err(e) = enable_raw_mode() {
            restore_stderr();
            return Err(e);
        }
        ACTIVE.store(true, Ordering::SeqCst);
        let mut stdout = io::stdout();
        if let Err(e) = execute!(stdout, EnterAlternateScreen, Hide) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(Tui { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor and ends raw mode, if the TUI had set
/// them. Safe to call from anywhere, any number of times.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
        let _ = disable_raw_mode();
    }
    restore_stderr();
}

fn redirect_stderr(path: &Path) -> io::Result<()> {
    let file = File::create(path)?;
    let saved = rustix::io::dup(io::stderr())?;
    rustix::stdio::dup2_stderr(&file)?;
    *SAVED_STDERR.lock().unwrap_or_else(|p| p.into_inner()) = Some(saved);
    Ok(())
}

fn restore_stderr() {
    let saved = SAVED_STDERR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(fd) = saved {
        let _ = rustix::stdio::dup2_stderr(&fd);
    }
}
