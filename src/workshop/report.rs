//! A run's results for its readers: JSON for scripts (`-o json`), plain lines for a
//! person without a terminal (`--no-tui`). Pure: built from the steps and outcomes.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Outcome, Workshop};

/// `-o json`: every check's state, the step to do, and whether all pass.
#[derive(Debug, Serialize)]
pub struct Report {
    pub steps: Vec<StepReport>,
    pub current: usize,
    pub all_passed: bool,
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub number: usize,
    pub title: String,
    pub passed: bool,
    /// What is wrong, when the check fails.
    pub detail: Option<String>,
    pub fix: String,
}

impl Report {
    pub fn new(workshop: &Workshop, results: &[Outcome], current: usize) -> Report {
        let steps: Vec<StepReport> = workshop
            .steps
            .iter()
            .zip(results)
            .enumerate()
            .map(|(i, (s, r))| StepReport {
                number: i + 1,
                title: s.title.clone(),
                passed: r.passed(),
                detail: r.detail().map(str::to_owned),
                fix: s.fix.clone(),
            })
            .collect();
        let all_passed = steps.iter().all(|s| s.passed);
        Report {
            steps,
            current,
            all_passed,
        }
    }
}

/// One line per step, what regressed, then the current step's prose and commands.
pub fn plain(
    workshop: &Workshop,
    results: &[Outcome],
    current: usize,
    regressed: &[usize],
) -> String {
    let mut out = String::new();
    for (i, (s, r)) in workshop.steps.iter().zip(results).enumerate() {
        let n = i + 1;
        let _ = match r {
            Outcome::Pass => writeln!(out, "✓ {n}. {}", s.title),
            Outcome::Fail { what } if s.fix.is_empty() => {
                writeln!(out, "✗ {n}. {}: {what}", s.title)
            }
            Outcome::Fail { what } => {
                writeln!(out, "✗ {n}. {}: {what} — fix: {}", s.title, s.fix.trim())
            }
        };
    }
    for n in regressed {
        let _ = writeln!(out, "! step {n} passed before and fails now");
    }
    if results.iter().all(Outcome::passed) {
        let _ = writeln!(out, "\nEvery step passes: the workshop is done.");
        return out;
    }
    if let Some(step) = workshop.steps.get(current.saturating_sub(1)) {
        let _ = writeln!(out, "\n== {current}. {}\n", step.title);
        if !step.prose.trim().is_empty() {
            let _ = writeln!(out, "{}\n", step.prose.trim_end());
        }
        for c in &step.commands {
            let _ = writeln!(out, "    {c}");
        }
    }
    out
}
