//! The plain view of `up`: one line per event, for CI logs and for terminals without the TUI.
//! Formatting only; every decision was made by the engine.

use std::{fmt::Write as _, time::Duration};

use crate::engine::{
    error::report,
    event::{Event, UpdateTiming},
};
use crate::forward::Health;

/// The line for `event`, or `None` for events this view does not show.
pub fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::Watching { folders } => format!("watching {folders} folders for changes"),
        // The first round's lines say what it builds and applies.
        Event::Planned { .. } => return None,
        Event::ChangeSeen {
            images,
            resources,
            unrelated,
            rescan,
            unwatched,
            syncs,
            rebuilds,
        } => {
            let mut actions = Vec::new();
            if !syncs.is_empty() {
                actions.push(format!("live update {}", syncs.join(", ")));
            }
            if !images.is_empty() {
                actions.push(format!("rebuild {}", images.join(", ")));
            }
            if !resources.is_empty() {
                let names: Vec<&str> = resources.keys().map(String::as_str).collect();
                actions.push(format!("redeploy {}", names.join(", ")));
            }
            if actions.is_empty() {
                actions.push("nothing to build or deploy".into());
            }
            let mut s = format!("change: {}", actions.join("; "));
            if !unrelated.is_empty() {
                let names: Vec<_> = unrelated.iter().map(|p| p.display().to_string()).collect();
                let _ = write!(
                    s,
                    " ({} not an input of any image or manifest)",
                    names.join(", ")
                );
            }
            if let Some(why) = rescan {
                let _ = write!(s, " (every input looked at again: {why})");
            }
            for e in unwatched {
                let _ = write!(s, "; changes there go unseen: {}", report(&**e));
            }
            for (image, why) in rebuilds {
                let _ = write!(s, "; full rebuild of {image}: {why}");
            }
            s
        }
        Event::ConfigReloaded { change } => {
            let mut parts = Vec::new();
            for (what, names) in [
                ("added", &change.added),
                ("changed", &change.changed),
                ("removed", &change.removed),
            ] {
                if !names.is_empty() {
                    parts.push(format!("{what} {}", names.join(", ")));
                }
            }
            if parts.is_empty() {
                parts.push("no resource changed".into());
            }
            let mut s = format!("config: reloaded tether.toml ({})", parts.join("; "));
            if !change.removed.is_empty() {
                s.push_str("; what removed resources deployed stays until `tether down`");
            }
            if !change.unforwarded.is_empty() {
                let _ = write!(
                    s,
                    "; the port-forwards of {} start with the next `tether up`",
                    change.unforwarded.join(", ")
                );
            }
            s
        }
        Event::ConfigRejected { error } => format!(
            "config: the edited tether.toml is invalid, the running one stays: {}",
            report(&**error)
        ),
        Event::BuildStarted { image } => format!("[{image}] build: checking inputs"),
        Event::BuildOutput { image, line } => format!("[{image}] build: {line}"),
        Event::Building { image, elapsed } => {
            format!(
                "[{image}] build: still building, {} s so far",
                elapsed.as_secs()
            )
        }
        Event::BuildDone {
            image,
            result: Ok(b),
        } if !b.rebuilt => {
            format!(
                "[{image}] build: up to date, {} already in the registry (no build)",
                b.reference
            )
        }
        Event::BuildDone {
            image,
            result: Ok(b),
        } => format!(
            "[{image}] build: pushed {} (host build {}, image build {}, push {})",
            b.reference,
            secs(b.timings.host_build),
            secs(b.timings.image_build),
            secs(b.timings.push)
        ),
        Event::BuildDone {
            image,
            result: Err(e),
        } => format!("[{image}] build FAILED: {}", report(&**e)),
        Event::DeployStarted { resource } => format!("[{resource}] deploy: applying"),
        Event::Applied { resource, counts } => format!(
            "[{resource}] deploy: {} created, {} configured, {} unchanged",
            counts.created, counts.configured, counts.unchanged
        ),
        Event::Waiting { resource, reason } => format!("[{resource}] waiting: {reason}"),
        Event::Shared { resource, note } => format!("[{resource}] {note}"),
        Event::Pods {
            resource, counts, ..
        } => format!(
            "[{resource}] pods: {}/{} ready, {} restarts",
            counts.ready, counts.total, counts.restarts
        ),
        Event::Ready {
            resource,
            update: None,
        } => format!("[{resource}] ready"),
        Event::Ready {
            resource,
            update: Some(t),
        } => format!("[{resource}] ready: {}", update_line(t)),
        Event::Failed { resource, error } => {
            format!("[{resource}] FAILED: {}", report(&**error))
        }
        Event::Synced { resource, report } => format!("[{resource}] live update: {report}"),
        Event::SyncFailed {
            resource,
            image,
            reason,
            rebuild: true,
        } => format!("[{resource}] live update of {image} failed, full rebuild instead: {reason}"),
        Event::SyncFailed {
            resource,
            image,
            reason,
            rebuild: false,
        } => format!(
            "[{resource}] live update of {image} FAILED (the next save tries again): {reason}"
        ),
        Event::Forward(h) => match &h.health {
            Health::Waiting => format!(
                "[{}] forward http://localhost:{}: waiting for a ready pod",
                h.resource, h.local
            ),
            Health::Healthy { pod } => format!(
                "[{}] forward http://localhost:{} -> {pod}: healthy",
                h.resource, h.local
            ),
            Health::Unhealthy { reason } => {
                format!(
                    "[{}] forward http://localhost:{}: UNHEALTHY: {reason}",
                    h.resource, h.local
                )
            }
        },
        // A panel in the TUI; here its last line (a total), when it changes.
        Event::Status { resource, text } => {
            let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            format!("[{resource}] status: {}", last.trim())
        }
        Event::Scaled { resource, summary } => format!("[{resource}] {summary}"),
        Event::Log(l) => format!(
            "[{}] {} | {}",
            l.resource,
            crate::logs::short_pod(&l.pod),
            l.text
        ),
    })
}

/// The save-to-serving summary; the benchmark reads these figures.
pub fn update_line(t: &UpdateTiming) -> String {
    format!(
        "serving the change {} after the save (watch {}, digest {}, host build {}, image build {}, push {}, apply {}, rollout {}, sync {}, restart {}; tether's own share {})",
        secs(t.total),
        secs(t.watch),
        secs(t.digest),
        secs(t.host_build),
        secs(t.image_build),
        secs(t.push),
        secs(t.apply),
        secs(t.rollout),
        secs(t.sync),
        secs(t.restart),
        secs(t.own_overhead()),
    )
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn change(images: &[&str], resources: &[&str]) -> Event {
        Event::ChangeSeen {
            images: images.iter().map(|i| i.to_string()).collect(),
            resources: resources
                .iter()
                .map(|r| (r.to_string(), vec![]))
                .collect::<BTreeMap<_, _>>(),
            unrelated: vec!["NOTES.md".into()],
            rescan: None,
            unwatched: vec![],
            syncs: vec![],
            rebuilds: BTreeMap::new(),
        }
    }

    #[test]
    fn a_change_line_says_what_it_rebuilds_and_redeploys() {
        assert_eq!(
            line(&change(&[], &["extra"])).unwrap(),
            "change: redeploy extra (NOTES.md not an input of any image or manifest)"
        );
        assert_eq!(
            line(&change(&["web"], &["web"])).unwrap(),
            "change: rebuild web; redeploy web (NOTES.md not an input of any image or manifest)"
        );
        assert!(
            line(&change(&[], &[]))
                .unwrap()
                .starts_with("change: nothing to build or deploy")
        );
    }
}
