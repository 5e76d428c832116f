//! The JSON shapes of the control socket, kept apart from the engine's types so the
//! engine can change without breaking scripts that read `tether status -o json`.
//! Compatibility rules are in the [module above](super).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    engine::{
        State, UpdateTiming,
        state::{Phase, ResourceView},
    },
    forward::Health,
    logs_history::Entry,
};

/// Bumped when a field or path is removed or renamed.
pub const VERSION: u32 = 1;

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    /// The `up` process.
    pub pid: u32,
    /// The project folder.
    pub root: String,
    pub all_ready: bool,
    pub resources: Vec<ResourceStatus>,
    /// The profile this `up` runs, when it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileStatus>,
}

/// A run's profile: its name, the namespace it deploys into, and who it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileStatus {
    pub name: String,
    pub namespace: String,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub name: String,
    pub images: Vec<String>,
    pub build: BuildPhase,
    /// How long the running build has taken so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building_ms: Option<u64>,
    /// Host build, image build and push of the last build that ran.
    pub last_build_ms: Option<u64>,
    pub deploy: DeployPhase,
    pub pods: Pods,
    pub forwards: Vec<ForwardStatus>,
    /// Why the resource is not ready yet, in words.
    pub waiting_for: Option<String>,
    pub last_error: Option<String>,
    /// Where the time of the last update from a save went.
    pub last_update: Option<UpdateStatus>,
    /// What the last change did, in words ("synced 1 file … and restarted in 0.21 s",
    /// "full rebuild: Cargo.toml matches fall_back_on `Cargo.toml`").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// Each replica, by pod name.
    #[serde(default)]
    pub replicas: Vec<ReplicaStatus>,
    /// The latest output of the resource's `status_cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub pod: String,
    pub ready: bool,
    pub restarts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildPhase {
    Pending,
    Building,
    Built,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployPhase {
    Pending,
    Deploying,
    Ready,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pods {
    pub ready: usize,
    pub total: usize,
    pub restarts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardStatus {
    pub local: u16,
    pub url: String,
    /// `waiting`, `healthy` or `unhealthy`.
    pub health: String,
    /// The pod the last tunnel reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Milliseconds per stage, from the first file event to ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub total_ms: u64,
    pub watch_ms: u64,
    pub digest_ms: u64,
    pub host_build_ms: u64,
    pub image_build_ms: u64,
    pub push_ms: u64,
    pub apply_ms: u64,
    pub rollout_ms: u64,
    /// A live update's sending of files, and the app's restart after it.
    #[serde(default)]
    pub sync_ms: u64,
    #[serde(default)]
    pub restart_ms: u64,
}

/// One line of `GET /logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// RFC 3339 UTC, when `up` received the line.
    pub at: String,
    pub resource: String,
    pub pod: String,
    pub container: String,
    pub text: String,
}

/// The body of an error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

impl Status {
    pub fn from_state(state: &State, pid: u32, root: String) -> Status {
        Status {
            version: VERSION,
            pid,
            root,
            profile: None,
            all_ready: state.all_ready(),
            resources: state
                .resources
                .iter()
                .map(|(name, r)| ResourceStatus::from_view(name, r))
                .collect(),
        }
    }
}

impl ResourceStatus {
    fn from_view(name: &str, r: &ResourceView) -> ResourceStatus {
        ResourceStatus {
            name: name.to_owned(),
            images: r.images.clone(),
            build: match r.build {
                Phase::Pending => BuildPhase::Pending,
                Phase::Running => BuildPhase::Building,
                Phase::Ok => BuildPhase::Built,
                Phase::Failed => BuildPhase::Failed,
            },
            building_ms: r.building_for.map(ms),
            last_build_ms: r.last_build.map(ms),
            deploy: match r.deploy {
                Phase::Pending => DeployPhase::Pending,
                Phase::Running => DeployPhase::Deploying,
                Phase::Ok => DeployPhase::Ready,
                Phase::Failed => DeployPhase::Failed,
            },
            pods: Pods {
                ready: r.pods.ready,
                total: r.pods.total,
                restarts: r.pods.restarts,
            },
            forwards: r
                .forwards
                .iter()
                .map(|(local, health)| ForwardStatus {
                    local: *local,
                    url: format!("http://localhost:{local}"),
                    health: match health {
                        Health::Waiting => "waiting",
                        Health::Healthy { .. } => "healthy",
                        Health::Unhealthy { .. } => "unhealthy",
                    }
                    .to_owned(),
                    pod: match health {
                        Health::Healthy { pod } => Some(pod.clone()),
                        _ => None,
                    },
                    reason: match health {
                        Health::Unhealthy { reason } => Some(reason.clone()),
                        _ => None,
                    },
                })
                .collect(),
            waiting_for: r.waiting_for.clone(),
            last_error: r.last_error.clone(),
            last_update: r.last_update.as_ref().map(UpdateStatus::from_timing),
            last_change: r.last_change.clone(),
            replicas: r
                .replicas
                .iter()
                .map(|p| ReplicaStatus {
                    pod: p.pod.clone(),
                    ready: p.ready,
                    restarts: p.restarts,
                })
                .collect(),
            status: r.status.clone(),
        }
    }
}

impl UpdateStatus {
    fn from_timing(t: &UpdateTiming) -> UpdateStatus {
        UpdateStatus {
            total_ms: ms(t.total),
            watch_ms: ms(t.watch),
            digest_ms: ms(t.digest),
            host_build_ms: ms(t.host_build),
            image_build_ms: ms(t.image_build),
            push_ms: ms(t.push),
            apply_ms: ms(t.apply),
            rollout_ms: ms(t.rollout),
            sync_ms: ms(t.sync),
            restart_ms: ms(t.restart),
        }
    }
}

impl From<&Entry> for LogRecord {
    fn from(e: &Entry) -> LogRecord {
        LogRecord {
            at: e.at.clone(),
            resource: e.line.resource.clone(),
            pod: e.line.pod.clone(),
            container: e.line.container.clone(),
            text: e.line.text.clone(),
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
