//! The one state store of `up`: plain data, changed only by [`State::apply`] from events,
//! read by views as snapshots.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use super::{
    error::report,
    event::{Event, UpdateTiming},
};
use crate::{
    deploy::rollout::{PodCounts, Replica},
    forward::Health,
};

/// Log lines kept in memory for views; older lines are only in the on-disk history.
pub const LOG_LINES_IN_MEMORY: usize = 2_000;

#[derive(Debug, Clone, Default)]
pub struct State {
    pub resources: BTreeMap<String, ResourceView>,
    pub logs: VecDeque<crate::logs::LogLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceView {
    /// Images of this resource, as far as the engine knows them.
    pub images: Vec<String>,
    pub build: Phase,
    /// How long the running build has taken so far (from [`Event::Building`]).
    pub building_for: Option<Duration>,
    pub last_build: Option<Duration>,
    pub deploy: Phase,
    pub pods: PodCounts,
    /// Each replica, by pod name.
    pub replicas: Vec<Replica>,
    /// The latest output of the resource's `status_cmd`.
    pub status: Option<String>,
    /// Local port and health of each forward.
    pub forwards: BTreeMap<u16, Health>,
    pub waiting_for: Option<String>,
    pub last_error: Option<String>,
    pub last_update: Option<UpdateTiming>,
    /// What the last change did, in words: a sync and what it sent, or why a live-update
    /// image was built instead.
    pub last_change: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Pending,
    Running,
    Ok,
    Failed,
}

impl State {
    /// Registers the resources and the images each uses, so views list them from the start.
    pub fn new(images_by_resource: BTreeMap<String, Vec<String>>) -> State {
        State {
            resources: images_by_resource
                .into_iter()
                .map(|(name, images)| {
                    (
                        name,
                        ResourceView {
                            images,
                            ..ResourceView::default()
                        },
                    )
                })
                .collect(),
            logs: VecDeque::new(),
        }
    }

    pub fn all_ready(&self) -> bool {
        self.resources.values().all(|r| r.deploy == Phase::Ok)
    }

    /// Applies one event: the only way state changes.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Watching { .. } | Event::BuildOutput { .. } | Event::ConfigRejected { .. } => {}
            // The plan says which images each resource it applies uses now, so a build
            // of an image a resource just started using shows on that resource.
            Event::Planned { images } => {
                for (name, images) in images {
                    self.resources.entry(name.clone()).or_default().images = images.clone();
                }
            }
            Event::ChangeSeen {
                resources,
                syncs,
                rebuilds,
                ..
            } => {
                for (name, images) in resources {
                    self.resources.entry(name.clone()).or_default().images = images.clone();
                }
                for (image, why) in rebuilds {
                    for r in self.using(image) {
                        r.last_change = Some(format!("full rebuild: {why}"));
                    }
                }
                for image in syncs {
                    for r in self.using(image) {
                        r.build = Phase::Running;
                        r.last_change = Some("syncing".into());
                    }
                }
            }
            Event::Synced { resource, report } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.build = Phase::Ok;
                    r.last_error = None;
                    r.last_change = Some(report.to_string());
                }
            }
            Event::SyncFailed {
                resource,
                reason,
                rebuild,
                ..
            } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    if *rebuild {
                        r.last_change = Some(format!("full rebuild: the sync failed: {reason}"));
                    } else {
                        r.build = Phase::Failed;
                        r.last_error = Some(format!("live update failed: {reason}"));
                    }
                }
            }
            Event::ConfigReloaded { change } => {
                for name in &change.added {
                    self.resources.entry(name.clone()).or_default();
                }
                for name in &change.removed {
                    self.resources.remove(name);
                }
            }
            Event::BuildStarted { image } => {
                for r in self.using(image) {
                    r.build = Phase::Running;
                    r.building_for = None;
                }
            }
            Event::Building { image, elapsed } => {
                for r in self.using(image) {
                    r.building_for = Some(*elapsed);
                }
            }
            Event::BuildDone { image, result } => {
                for r in self.using(image) {
                    r.building_for = None;
                    match result {
                        Ok(b) => {
                            r.build = Phase::Ok;
                            if b.rebuilt {
                                r.last_build = Some(
                                    b.timings.host_build + b.timings.image_build + b.timings.push,
                                );
                            }
                        }
                        Err(e) => {
                            r.build = Phase::Failed;
                            r.last_error = Some(report(&**e));
                        }
                    }
                }
            }
            Event::DeployStarted { resource } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.deploy = Phase::Running;
                    r.waiting_for = None;
                }
            }
            Event::Applied { .. } | Event::Shared { .. } => {}
            Event::Waiting { resource, reason } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.waiting_for = Some(reason.clone());
                    // A ready resource whose pods stop being ready is not ready any more.
                    if r.deploy == Phase::Ok {
                        r.deploy = Phase::Running;
                    }
                }
            }
            Event::Pods {
                resource,
                counts,
                replicas,
            } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.pods = *counts;
                    r.replicas = replicas.clone();
                }
            }
            Event::Status { resource, text } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.status = Some(text.clone());
                }
            }
            Event::Scaled { resource, summary } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.last_change = Some(summary.clone());
                }
            }
            Event::Ready { resource, update } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.deploy = Phase::Ok;
                    r.waiting_for = None;
                    r.last_error = None;
                    if update.is_some() {
                        r.last_update = *update;
                    }
                }
            }
            Event::Failed { resource, error } => {
                if let Some(r) = self.resources.get_mut(resource) {
                    r.deploy = Phase::Failed;
                    r.last_error = Some(report(&**error));
                }
            }
            Event::Forward(h) => {
                if let Some(r) = self.resources.get_mut(&h.resource) {
                    r.forwards.insert(h.local, h.health.clone());
                }
            }
            Event::Log(line) => {
                if self.logs.len() == LOG_LINES_IN_MEMORY {
                    self.logs.pop_front();
                }
                self.logs.push_back(line.clone());
            }
        }
    }

    fn using<'a>(&'a mut self, image: &'a str) -> impl Iterator<Item = &'a mut ResourceView> + 'a {
        self.resources
            .values_mut()
            .filter(move |r| r.images.iter().any(|i| i == image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogLine;

    #[test]
    fn events_drive_phases_and_logs_stay_bounded() {
        let mut s = State::new(BTreeMap::from([
            ("users".to_owned(), vec!["users".to_owned()]),
            ("db".to_owned(), vec![]),
        ]));
        s.apply(&Event::BuildStarted {
            image: "users".into(),
        });
        assert_eq!(s.resources["users"].build, Phase::Running);
        assert_eq!(s.resources["db"].build, Phase::Pending);
        s.apply(&Event::BuildDone {
            image: "users".into(),
            result: Err(std::sync::Arc::new(crate::build::BuildError::Registry(
                "boom".into(),
            ))),
        });
        assert_eq!(
            s.resources["users"].last_error.as_deref(),
            Some("registry: boom")
        );
        s.apply(&Event::Ready {
            resource: "users".into(),
            update: None,
        });
        s.apply(&Event::Ready {
            resource: "db".into(),
            update: None,
        });
        assert!(s.all_ready());
        assert_eq!(s.resources["users"].last_error, None);
        for i in 0..LOG_LINES_IN_MEMORY + 5 {
            s.apply(&Event::Log(LogLine {
                resource: "users".into(),
                pod: "p".into(),
                container: "c".into(),
                text: i.to_string(),
            }));
        }
        assert_eq!(s.logs.len(), LOG_LINES_IN_MEMORY);
        assert_eq!(s.logs.front().unwrap().text, "5");
    }

    #[test]
    fn a_sync_and_a_fallback_say_in_words_what_the_last_change_did() {
        let mut s = State::new(BTreeMap::from([(
            "users".to_owned(),
            vec!["users".to_owned()],
        )]));
        let seen = |syncs: Vec<String>, rebuilds: BTreeMap<String, String>| Event::ChangeSeen {
            images: vec![],
            resources: BTreeMap::new(),
            unrelated: vec![],
            rescan: None,
            unwatched: vec![],
            syncs,
            rebuilds,
        };
        s.apply(&seen(vec!["users".into()], BTreeMap::new()));
        assert_eq!(
            s.resources["users"].build,
            Phase::Running,
            "syncing shows as busy"
        );
        let report = crate::engine::live::SyncReport::example();
        s.apply(&Event::Synced {
            resource: "users".into(),
            report: std::sync::Arc::new(report),
        });
        let users = &s.resources["users"];
        assert_eq!(users.build, Phase::Ok);
        assert_eq!(
            users.last_change.as_deref(),
            Some("synced 1 file (src/routes.rs → /users via host build) and restarted in 0.21 s")
        );
        s.apply(&seen(
            vec![],
            BTreeMap::from([(
                "users".to_owned(),
                "Cargo.toml matches fall_back_on `Cargo.toml`".to_owned(),
            )]),
        ));
        assert_eq!(
            s.resources["users"].last_change.as_deref(),
            Some("full rebuild: Cargo.toml matches fall_back_on `Cargo.toml`")
        );
        s.apply(&Event::SyncFailed {
            resource: "users".into(),
            image: "users".into(),
            reason: "the run step `make` exited with code 2".into(),
            rebuild: false,
        });
        assert_eq!(s.resources["users"].build, Phase::Failed);
        assert!(
            s.resources["users"]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("exited with code 2"))
        );
    }

    #[test]
    fn a_resource_that_starts_using_an_image_is_shown_building_it() {
        let mut s = State::new(BTreeMap::from([("web".to_owned(), vec!["web".to_owned()])]));
        // web's manifest now also runs the `worker` image.
        s.apply(&Event::ChangeSeen {
            images: vec!["worker".into()],
            resources: BTreeMap::from([(
                "web".to_owned(),
                vec!["web".to_owned(), "worker".to_owned()],
            )]),
            unrelated: vec![],
            rescan: None,
            unwatched: vec![],
            syncs: vec![],
            rebuilds: BTreeMap::new(),
        });
        s.apply(&Event::BuildStarted {
            image: "worker".into(),
        });
        assert_eq!(s.resources["web"].build, Phase::Running);
        assert_eq!(s.resources["web"].images, ["web", "worker"]);
    }

    #[test]
    fn a_reloaded_config_lists_new_resources_and_drops_removed_ones() {
        let mut s = State::new(BTreeMap::from([("web".to_owned(), vec![])]));
        s.apply(&Event::ConfigReloaded {
            change: crate::engine::plan::ConfigChange {
                added: vec!["extra".into()],
                removed: vec!["web".into()],
                changed: vec![],
                unforwarded: vec![],
            },
        });
        assert_eq!(s.resources.keys().collect::<Vec<_>>(), ["extra"]);
        assert_eq!(s.resources["extra"].deploy, Phase::Pending);
    }

    #[test]
    fn a_ready_resource_whose_pods_fail_is_not_ready_until_they_recover() {
        let mut s = State::new(BTreeMap::from([("web".to_owned(), vec![])]));
        let ready = Event::Ready {
            resource: "web".into(),
            update: None,
        };
        s.apply(&ready);
        s.apply(&Event::Waiting {
            resource: "web".into(),
            reason: "pod web-1: container web exited (exit code 3)".into(),
        });
        assert_eq!(s.resources["web"].deploy, Phase::Running);
        assert!(!s.all_ready());
        s.apply(&ready);
        assert!(s.all_ready());
        assert_eq!(s.resources["web"].waiting_for, None);
    }
}
