//! What the tasks of `up` report. Every view (progress lines, the TUI, the control socket)
//! is built from these events alone.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use super::{error::RoundError, live::SyncReport, plan::ConfigChange};
use crate::{
    build::{BuildError, Built},
    config::ConfigError,
    deploy::{
        ApplyCounts,
        rollout::{PodCounts, Replica},
    },
    forward::HealthEvent,
    logs::LogLine,
    watch::{Rescan, WatchError},
};

#[derive(Debug, Clone)]
pub enum Event {
    /// The watcher is up over this many folders.
    Watching {
        folders: usize,
    },
    /// The first round's plan: the project's images each resource's manifests name, so
    /// views list them before anything is built.
    Planned {
        images: BTreeMap<String, Vec<String>>,
    },
    /// A change set and the plan made of it: the images to build, the resources to
    /// apply with the images each uses now (a manifest may have started using another),
    /// and the files that are inputs of nothing.
    ChangeSeen {
        images: Vec<String>,
        resources: BTreeMap<String, Vec<String>>,
        unrelated: Vec<PathBuf>,
        /// Events were lost and every input was looked at again, for this reason.
        rescan: Option<Rescan>,
        /// New folders that could not be watched.
        unwatched: Vec<Arc<WatchError>>,
        /// Images whose change goes into their running containers, without a build.
        syncs: Vec<String>,
        /// Images with live-update rules that are built anyway, and why.
        rebuilds: BTreeMap<String, String>,
    },
    /// `tether.toml` changed and the new one runs from now on.
    ConfigReloaded {
        change: ConfigChange,
    },
    /// `tether.toml` changed but cannot be used; the previous one keeps running.
    ConfigRejected {
        error: Arc<ConfigError>,
    },
    BuildStarted {
        image: String,
    },
    BuildOutput {
        image: String,
        line: String,
    },
    /// A build still running this long after it started: sent every few seconds, so a
    /// long compile shows its time instead of looking stuck.
    Building {
        image: String,
        elapsed: Duration,
    },
    BuildDone {
        image: String,
        result: Result<Built, Arc<BuildError>>,
    },
    DeployStarted {
        resource: String,
    },
    Applied {
        resource: String,
        counts: ApplyCounts,
    },
    /// A shared instance joined: made, reused or redeployed, its owner and consumers.
    Shared {
        resource: String,
        note: String,
    },
    /// The resource is not ready, and this is why (changes only).
    Waiting {
        resource: String,
        reason: String,
    },
    Pods {
        resource: String,
        counts: PodCounts,
        /// Each replica, by pod name.
        replicas: Vec<Replica>,
    },
    Ready {
        resource: String,
        update: Option<UpdateTiming>,
    },
    Failed {
        resource: String,
        error: Arc<RoundError>,
    },
    /// A change went into the running containers of `resource` without a build.
    Synced {
        resource: String,
        report: Arc<SyncReport>,
    },
    /// A sync into `resource` failed; with `rebuild`, a full build follows.
    SyncFailed {
        resource: String,
        image: String,
        reason: String,
        rebuild: bool,
    },
    /// The latest output of the resource's `status_cmd` (changes only).
    Status {
        resource: String,
        text: String,
    },
    /// A workload of the resource was scaled by hand (`tether scale`, the TUI).
    Scaled {
        resource: String,
        summary: String,
    },
    Forward(HealthEvent),
    Log(LogLine),
}

/// Where the time from a save to the new version serving went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateTiming {
    /// From the first file event to the change set being handed on (debounce).
    pub watch: Duration,
    pub digest: Duration,
    /// The developer's own build command (the compiler), kept apart from tether's work.
    pub host_build: Duration,
    pub image_build: Duration,
    pub push: Duration,
    pub apply: Duration,
    pub rollout: Duration,
    /// A live update's sending and writing of files.
    pub sync: Duration,
    /// A live update's restart of the app, until its ports answer: the app's own start.
    pub restart: Duration,
    /// From the first file event to ready.
    pub total: Duration,
}

impl UpdateTiming {
    /// Time tether itself spent: everything but the host build, the rollout and the app's
    /// restart, which belong to the compiler, the cluster and the app.
    pub fn own_overhead(&self) -> Duration {
        self.total
            .saturating_sub(self.host_build + self.rollout + self.restart)
    }
}
