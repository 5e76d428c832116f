//! `.tether/workshop.json` beside `workshop.toml`: which steps passed, and when, so a
//! later run resumes where the participant is; and the pure rules of resuming.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{Outcome, WorkshopError};

/// The progress file's name inside `.tether/`.
pub const FILE_NAME: &str = "workshop.json";

/// Steps (1-based) that passed, with the time each first passed (RFC 3339).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub passed: BTreeMap<usize, String>,
}

/// Where the progress of the workshop in `dir` lives.
pub fn file(dir: &Path) -> PathBuf {
    dir.join(".tether").join(FILE_NAME)
}

impl Progress {
    /// The saved progress; none yet is an empty one.
    pub fn load(dir: &Path) -> Result<Progress, WorkshopError> {
        let path = file(dir);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| WorkshopError::ProgressParse { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Progress::default()),
            Err(source) => Err(WorkshopError::Progress { path, source }),
        }
    }

    /// Writes the progress into `.tether/` (made 0700, as all of tether's state).
    pub fn save(&self, dir: &Path) -> Result<(), WorkshopError> {
        let path = file(dir);
        let err = |source| WorkshopError::Progress {
            path: path.clone(),
            source,
        };
        crate::state_dir::ensure(dir).map_err(err)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| err(io::Error::other(e)))?;
        crate::state_dir::write_private(&path, &bytes).map_err(err)
    }

    /// Removes the progress file (`--reset`); none is fine.
    pub fn remove(dir: &Path) -> Result<(), WorkshopError> {
        let path = file(dir);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(WorkshopError::Progress { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Records this run's passes at `now`, in order: a step is done once it and every
    /// step before it pass (a later check that happens to hold early, such as "nothing
    /// is intercepted" before anything was, records nothing). A step keeps the time it
    /// first passed.
    pub fn record(&mut self, results: &[Outcome], now: &str) {
        for (i, r) in results.iter().enumerate() {
            if !r.passed() {
                return;
            }
            self.passed.entry(i + 1).or_insert_with(|| now.to_owned());
        }
    }

    /// Steps that passed before but fail now: the participant undid something.
    pub fn regressed(&self, results: &[Outcome]) -> Vec<usize> {
        results
            .iter()
            .enumerate()
            .filter(|(i, r)| !r.passed() && self.passed.contains_key(&(i + 1)))
            .map(|(i, _)| i + 1)
            .collect()
    }
}

/// Each step's state for the participant: its check now, except that a step done before
/// stays done while the step that ends what it set up (`holds_until`) is done too: the
/// intercept of step 6 is meant to be gone once `leave` (step 8) restored the cluster.
/// Computed from the last step back, as each step looks only forward.
pub fn settle(steps: &[super::Step], saved: &Progress, now: &[Outcome]) -> Vec<Outcome> {
    let mut settled: Vec<Outcome> = now.to_vec();
    for i in (0..steps.len().min(now.len())).rev() {
        if settled[i].passed() || !saved.passed.contains_key(&(i + 1)) {
            continue;
        }
        let ended = steps[i]
            .holds_until
            .is_some_and(|until| settled.get(until - 1).is_some_and(Outcome::passed));
        if ended {
            settled[i] = Outcome::Pass;
        }
    }
    settled
}

/// The step (1-based) a run resumes at: the first that does not pass now, else the last.
pub fn current(results: &[Outcome]) -> usize {
    results
        .iter()
        .position(|r| !r.passed())
        .map_or(results.len().max(1), |i| i + 1)
}
