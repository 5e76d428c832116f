//! `tether workshop`: finds and loads the steps, runs their checks, records progress,
//! and shows the result as JSON, plain lines, or the live screen.

use std::{io::IsTerminal as _, process::Stdio, sync::Arc, time::Duration};

use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::{Classified, Failure, output};
use crate::{
    cli::WorkshopArgs,
    workshop::{
        Env, Outcome, Progress, Workshop, WorkshopError, check, progress, report, screen, steps,
    },
};

impl Classified for WorkshopError {
    fn is_bad_input(&self) -> bool {
        self.is_bad_input()
    }
}

pub async fn run(args: WorkshopArgs) -> Result<(), Failure> {
    let file = steps::find(&args.dir).map_err(Failure::classify)?;
    let workshop = steps::load(&file).map_err(Failure::classify)?;
    if let Some(n) = args.step
        && (n == 0 || n > workshop.steps.len())
    {
        return Err(Failure::classify(WorkshopError::NoSuchStep {
            step: n,
            count: workshop.steps.len(),
        }));
    }
    if args.reset {
        reset(&workshop).await.map_err(Failure::classify)?;
    }
    let env = if workshop
        .steps
        .iter()
        .any(|s| s.checks().any(|c| c.needs_cluster()))
    {
        Env::connect(workshop.root.clone(), args.context.as_deref())
            .await
            .map_err(Failure::classify)?
    } else {
        Env::local(workshop.root.clone())
    };

    let mut results = Vec::new();
    for s in &workshop.steps {
        results.push(check::run_step(s, &env).await);
    }
    let mut saved = Progress::load(&workshop.dir).map_err(Failure::classify)?;
    // Steps whose set-up a later step ended count as done; any other step that passed
    // before and fails now was undone.
    let results = progress::settle(&workshop.steps, &saved, &results);
    let regressed = saved.regressed(&results);
    saved.record(&results, &jiff::Timestamp::now().to_string());
    saved.save(&workshop.dir).map_err(Failure::classify)?;
    let current = args.step.unwrap_or_else(|| progress::current(&results));
    let all_passed = results.iter().all(Outcome::passed);

    if let Some(m) = output::machine(args.output) {
        let report = report::Report::new(&workshop, &results, current);
        output::print(m, output::Shape::Document, &report)?;
        return if all_passed {
            Ok(())
        } else {
            Err(Failure::Exit(1))
        };
    }
    if args.no_tui || !std::io::stdout().is_terminal() {
        print!(
            "{}",
            report::plain(&workshop, &results, current, &regressed)
        );
        return if all_passed {
            Ok(())
        } else {
            Err(Failure::Exit(1))
        };
    }
    live(workshop, env, results, current)
        .await
        .map_err(Failure::classify)
}

/// Runs the reset commands from the root, then forgets the progress.
async fn reset(workshop: &Workshop) -> Result<(), WorkshopError> {
    for command in &workshop.reset {
        let shown = command.join(" ");
        let Some((program, args)) = command.split_first() else {
            continue;
        };
        let status = tokio::process::Command::new(program)
            .args(args)
            .current_dir(&workshop.root)
            .stdin(Stdio::null())
            .status()
            .await
            .map_err(|e| WorkshopError::Reset {
                command: shown.clone(),
                reason: e.to_string(),
            })?;
        if !status.success() {
            return Err(WorkshopError::Reset {
                command: shown,
                reason: status.to_string(),
            });
        }
    }
    Progress::remove(&workshop.dir)
}

/// The live screen: keys move and toggle; the shown step's check re-runs every second
/// off the UI loop, its result sent back on `result_tx`.
async fn live(
    workshop: Workshop,
    env: Env,
    results: Vec<Outcome>,
    current: usize,
) -> Result<(), WorkshopError> {
    let dir = workshop.dir.clone();
    let steps = Arc::new(workshop.steps.clone());
    let env = Arc::new(env);
    let mut state = screen::Screen::new(workshop, &results, current);
    let mut tui = crate::tui::terminal::Tui::enter(None).map_err(WorkshopError::Terminal)?;
    let mut keys = crossterm::event::EventStream::new();
    let (result_tx, mut result_rx) = mpsc::channel::<(usize, Outcome)>(4);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut in_flight = false;
    while !state.quit {
        tui.terminal
            .draw(|f| screen::draw(f, &state))
            .map_err(WorkshopError::Terminal)?;
        tokio::select! {
            event = keys.next() => match event {
                Some(Ok(crossterm::event::Event::Key(k)))
                    if k.kind == crossterm::event::KeyEventKind::Press => state.key(k.code),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(WorkshopError::Terminal(e)),
                None => break,
            },
            _ = tick.tick(), if !in_flight => {
                in_flight = true;
                let (index, steps, env, result_tx) =
                    (state.selected, steps.clone(), env.clone(), result_tx.clone());
                tokio::spawn(async move {
                    if let Some(s) = steps.get(index) {
                        let _ = result_tx.send((index, check::run_step(s, &env).await)).await;
                    }
                });
            }
            Some((index, outcome)) = result_rx.recv() => {
                in_flight = false;
                if outcome.passed() {
                    let mut saved = Progress::load(&dir).unwrap_or_default();
                    if let std::collections::btree_map::Entry::Vacant(e) =
                        saved.passed.entry(index + 1)
                    {
                        e.insert(jiff::Timestamp::now().to_string());
                        // The screen keeps going if the progress cannot be saved.
                        let _ = saved.save(&dir);
                    }
                }
                state.checked(index, outcome);
            }
        }
    }
    Ok(())
}
