//! What `tether doctor` prints: one line per check (`pass|fail|warn  check: found`, and on
//! a failure the fix on the line below), or all of them as one JSON object for scripts.
//! Pure: the checks make [`Line`]s, the command edge prints what this renders.

use serde::Serialize;

/// How a check came out. A warning (a check that could not be made, or a finding that
/// does not stop tether) does not fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// The check's name, the same in every run (scripts and tests find lines by it).
    pub check: &'static str,
    pub status: Status,
    /// What was found, in a person's words.
    pub found: String,
    /// What to do about a failure or warning, when there is something to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Line {
    pub fn pass(check: &'static str, found: impl Into<String>) -> Line {
        Line {
            check,
            status: Status::Pass,
            found: found.into(),
            fix: None,
        }
    }

    pub fn warn(check: &'static str, found: impl Into<String>, fix: Option<String>) -> Line {
        Line {
            check,
            status: Status::Warn,
            found: found.into(),
            fix,
        }
    }

    pub fn fail(check: &'static str, found: impl Into<String>, fix: Option<String>) -> Line {
        Line {
            check,
            status: Status::Fail,
            found: found.into(),
            fix,
        }
    }

    /// The line as a person reads it; the fix, if any, indented below it.
    pub fn text(&self) -> String {
        let mut out = format!("{}  {}: {}", self.status.word(), self.check, self.found);
        if let Some(fix) = &self.fix {
            out.push_str("\n      fix: ");
            out.push_str(fix);
        }
        out
    }
}

/// Every check's line, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    /// Whether no check failed (warnings allowed): exit 0.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|l| l.status != Status::Fail)
    }

    /// `{"passed": bool, "checks": [{check, status, found, fix?}, …]}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "passed": self.passed(), "checks": self.lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_its_status_check_and_finding_and_a_failure_its_fix_below() {
        assert_eq!(
            Line::pass("API server", "answers, Kubernetes v1.33.1").text(),
            "pass  API server: answers, Kubernetes v1.33.1"
        );
        assert_eq!(
            Line::fail(
                "registry from the laptop",
                "127.0.0.1:5000 does not answer",
                Some("start the registry: scripts/dev-cluster up".into())
            )
            .text(),
            "fail  registry from the laptop: 127.0.0.1:5000 does not answer\n      \
             fix: start the registry: scripts/dev-cluster up"
        );
        assert_eq!(
            Line::warn("registry from the laptop", "no registry named", None).text(),
            "warn  registry from the laptop: no registry named"
        );
    }

    #[test]
    fn warnings_pass_and_one_failure_fails() {
        let mut report = Report {
            lines: vec![
                Line::pass("a", "ok"),
                Line::warn("b", "not tried", Some("x".into())),
            ],
        };
        assert!(report.passed());
        report
            .lines
            .push(Line::fail("c", "broken", Some("fix it".into())));
        assert!(!report.passed());
    }

    #[test]
    fn json_names_every_check_and_omits_an_absent_fix() {
        let report = Report {
            lines: vec![
                Line::pass("API server", "answers"),
                Line::fail("RBAC", "denied: create pods", Some("ask".into())),
            ],
        };
        assert_eq!(
            report.json(),
            serde_json::json!({
                "passed": false,
                "checks": [
                    {"check": "API server", "status": "pass", "found": "answers"},
                    {"check": "RBAC", "status": "fail", "found": "denied: create pods", "fix": "ask"},
                ]
            })
        );
    }
}
