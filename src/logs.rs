//! Logs of every pod and replica of a resource, fanned into one stream.
//!
//! [`follow`] starts one follower per container of each pod in the workload's [`PodSet`];
//! a new replica joins by itself and a follower ends with its pod. A follower reads its
//! container's runs one after the other, asking for timestamps so it always knows where
//! it is. When a stream ends it looks at the container's status in the set:
//! - the run died: the rest of it is read through `previous` (so a run that died before it
//!   was seen, or while its stream was down, is not missed), a note gives its exit code,
//!   and the next run is followed;
//! - the run still runs (an API server restart, a dropped connection): the stream is
//!   resumed with `sinceTime` at the last line passed on, skipping what was passed on
//!   already, and a note says that lines may be missing.
//!
//! Bytes that are not UTF-8 are replaced (lossy), never the end of a stream. Lines go to
//! `line_tx`, a bounded channel: a chatty pod slows its own follower, never the engine.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::AsyncBufReadExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use kube::{ResourceExt, api::LogParams};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::kube::{PodSet, WatchState};

/// One line a container printed, or a note of tether's about that container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub resource: String,
    pub pod: String,
    pub container: String,
    pub text: String,
}

/// How notes about a log (not printed by the container) begin.
pub const NOTE: &str = "tether: ";

/// How long a stream's end may precede the status saying that its run ended: the kubelet
/// reports a dead container within about a second.
const SETTLE: Duration = Duration::from_secs(3);

/// Reopening a broken stream: first after this, doubling up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the log of {pod}/{container}")]
    Open {
        pod: String,
        container: String,
        #[source]
        source: kube::Error,
    },
    #[error("the log stream of {pod}/{container} broke")]
    Read {
        pod: String,
        container: String,
        #[source]
        source: std::io::Error,
    },
}

/// Follows the logs of the pods in `pods` until `shutdown`.
pub async fn follow(
    pods: PodSet,
    resource: String,
    line_tx: mpsc::Sender<LogLine>,
    shutdown: CancellationToken,
) {
    let mut changes = pods.changes();
    // (pod uid, container) already followed.
    let mut followed: HashSet<(String, String)> = HashSet::new();
    let mut followers = JoinSet::new();
    loop {
        let all = pods.all();
        let uids: HashSet<String> = all.iter().filter_map(|p| p.uid()).collect();
        followed.retain(|(uid, _)| uids.contains(uid));
        for pod in all {
            let Some(uid) = pod.uid() else { continue };
            for container in container_names(&pod) {
                if followed.insert((uid.clone(), container.clone())) {
                    let follower = Follower {
                        pods: pods.clone(),
                        resource: resource.clone(),
                        pod: pod.name_any(),
                        uid: uid.clone(),
                        container,
                        line_tx: line_tx.clone(),
                        shutdown: shutdown.clone(),
                    };
                    followers.spawn(follower.run());
                }
            }
        }
        tokio::select! {
            // Dropping the set stops the followers.
            _ = shutdown.cancelled() => return,
            r = changes.changed() => if r.is_err() { return },
            Some(_) = followers.join_next() => {}
        }
    }
}

/// Init containers first, as they run.
fn container_names(pod: &Pod) -> Vec<String> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| c.name.clone())
        .collect()
}

/// The distinguishing tail of a pod name that text views tag each line with
/// (`medicine-7d9c-x2x4q` → `x2x4q`, `kafka-0` → `0`).
pub fn short_pod(pod: &str) -> &str {
    pod.rsplit('-').next().unwrap_or(pod)
}

/// Where a follower is in one run: the time of the last line passed on and how many
/// lines carried exactly that time. A stream resumed with `sinceTime` repeats the lines of
/// that time (and, as the API server passes whole seconds on, of that second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    at: Timestamp,
    same: usize,
}

impl Position {
    /// The position after a line at `at`.
    fn after(before: Option<Position>, at: Timestamp) -> Position {
        match before {
            Some(p) if p.at == at => Position {
                at,
                same: p.same + 1,
            },
            _ => Position { at, same: 1 },
        }
    }
}

/// The `sinceTime` that resumes after a line at `at`: the whole second at or before it.
/// kube rounds `sinceTime` to the nearest second, so a line at .54 s would resume at the
/// next second and lose the lines in between; from the second before, the lines repeated
/// are dropped by [`Skip`].
fn since(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// Drops the lines of a resumed stream that were passed on before it broke.
#[derive(Debug)]
struct Skip {
    until: Option<Position>,
    /// Lines at exactly `until.at` seen in this stream.
    same_seen: usize,
}

impl Skip {
    fn new(until: Option<Position>) -> Skip {
        Skip {
            until,
            same_seen: 0,
        }
    }

    /// Whether the line at `at` was passed on already.
    fn seen(&mut self, at: Option<Timestamp>) -> bool {
        let (Some(until), Some(at)) = (self.until, at) else {
            return false;
        };
        if at < until.at {
            return true;
        }
        if at == until.at && self.same_seen < until.same {
            self.same_seen += 1;
            return true;
        }
        false
    }
}

/// A line as the kubelet sends it with timestamps: `RFC3339NANO TEXT`. Not UTF-8 is
/// replaced, a line without a timestamp is kept whole.
fn parse(raw: &[u8]) -> (Option<Timestamp>, String) {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = String::from_utf8_lossy(raw);
    match text.split_once(' ') {
        Some((ts, rest)) => match ts.parse::<Timestamp>() {
            Ok(at) => (Some(at), rest.to_owned()),
            Err(_) => (None, text.into_owned()),
        },
        None => match text.parse::<Timestamp>() {
            // An empty line: only its timestamp.
            Ok(at) => (Some(at), String::new()),
            Err(_) => (None, text.into_owned()),
        },
    }
}

/// What to read next of a container, from its status.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// The run that ended before the current one (`previous=true`).
    Previous(String),
    /// The current run, followed; `running` says whether it still runs.
    Current { id: String, running: bool },
    /// Nothing until the status changes.
    Wait,
}

/// The oldest run in the status that is not read to its end yet (`done`).
fn next(cs: &ContainerStatus, done: &HashSet<String>) -> Next {
    let state = cs.state.as_ref();
    let running = state.is_some_and(|s| s.running.is_some());
    let current = cs
        .container_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .filter(|_| running || state.is_some_and(|s| s.terminated.is_some()));
    let previous = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.as_deref())
        .filter(|id| !id.is_empty());
    if let Some(p) = previous.filter(|p| !done.contains(*p) && Some(*p) != current) {
        return Next::Previous(p.to_owned());
    }
    match current.filter(|c| !done.contains(*c)) {
        Some(c) => Next::Current {
            id: c.to_owned(),
            running,
        },
        None => Next::Wait,
    }
}

/// How the run `id` ended, if the status says.
fn ended<'a>(cs: &'a ContainerStatus, id: &str) -> Option<&'a ContainerStateTerminated> {
    let current = cs
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .filter(|_| cs.container_id.as_deref() == Some(id));
    let previous = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .filter(|t| t.container_id.as_deref() == Some(id));
    current.or(previous)
}

fn exit(t: Option<&ContainerStateTerminated>) -> String {
    match t {
        Some(t) => match &t.reason {
            Some(r) => format!("exit code {}, {r}", t.exit_code),
            None => format!("exit code {}", t.exit_code),
        },
        None => "exit code unknown".into(),
    }
}

impl LogError {
    /// The server answered that this log cannot be read (the container is gone, its
    /// previous run was not kept): trying again will not help, unlike a dropped connection.
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            LogError::Open {
                source: kube::Error::Api(_),
                ..
            }
        )
    }
}

/// The error and its causes in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

/// How a read ended.
enum Read {
    /// The server closed the stream.
    Ended,
    /// Shutdown, or nobody takes lines any more.
    Stopped,
}

struct Follower {
    pods: PodSet,
    resource: String,
    pod: String,
    uid: String,
    container: String,
    line_tx: mpsc::Sender<LogLine>,
    shutdown: CancellationToken,
}

impl Follower {
    async fn run(self) {
        let mut changes = self.pods.changes();
        // Runs read to their end, and where each unfinished run was left.
        let mut done: HashSet<String> = HashSet::new();
        let mut positions: HashMap<String, Position> = HashMap::new();
        let mut retry = RETRY_MIN;
        // A broken stream was noted and not reopened since: one note per outage.
        let mut outage = false;
        loop {
            let Some(pod) = self.pod_now() else { return };
            let Some(cs) = status(&pod, &self.container) else {
                if !self.wait(&mut changes, None).await {
                    return;
                }
                continue;
            };
            match next(&cs, &done) {
                Next::Wait => {
                    if !self.wait(&mut changes, None).await {
                        return;
                    }
                }
                Next::Previous(id) => {
                    let before = positions.get(&id).copied();
                    if before.is_none() {
                        self.note(format!(
                            "a run of container {} ended ({}) before it was followed; its lines:",
                            self.container,
                            exit(ended(&cs, &id))
                        ))
                        .await;
                    }
                    let mut at = before;
                    let result = self.read(true, &mut at).await;
                    if let Some(at) = at {
                        positions.insert(id.clone(), at);
                    }
                    match result {
                        Ok(Read::Stopped) => return,
                        Ok(Read::Ended) => {
                            if before.is_some() {
                                self.note(format!(
                                    "container {} exited ({})",
                                    self.container,
                                    exit(ended(&cs, &id))
                                ))
                                .await;
                            }
                            done.insert(id.clone());
                            positions.remove(&id);
                        }
                        Err(e) if e.is_permanent() => {
                            self.note(format!(
                                "the last lines of a run of container {} that ended ({}) are lost: {}",
                                self.container,
                                exit(ended(&cs, &id)),
                                chain(&e)
                            ))
                            .await;
                            done.insert(id.clone());
                            positions.remove(&id);
                        }
                        // The API server or the connection: try again.
                        Err(_) => {
                            if !self.wait(&mut changes, Some(retry)).await {
                                return;
                            }
                            retry = (retry * 2).min(RETRY_MAX);
                        }
                    }
                }
                Next::Current { id, running } => {
                    let before = positions.get(&id).copied();
                    let mut at = before;
                    let result = self.read(false, &mut at).await;
                    if let Some(at) = at {
                        positions.insert(id.clone(), at);
                    }
                    if at != before {
                        // Lines flowed again: a later break is a new outage.
                        outage = false;
                        retry = RETRY_MIN;
                    }
                    let broke = match result {
                        Ok(Read::Stopped) => return,
                        Ok(Read::Ended) => None,
                        Err(e) => Some(e),
                    };
                    if !running && broke.as_ref().is_none_or(|e| e.is_permanent()) {
                        // A dead run, read to its end (or gone with the container).
                        let how = exit(ended(&cs, &id));
                        self.note(match &broke {
                            None => format!("container {} exited ({how})", self.container),
                            Some(e) => format!(
                                "the last lines of a run of container {} that ended ({how}) are lost: {}",
                                self.container,
                                chain(e)
                            ),
                        })
                        .await;
                        done.insert(id.clone());
                        positions.remove(&id);
                        continue;
                    }
                    // Did the run end, or only its stream? A run that ended is read to its
                    // end in the next turn, through its status.
                    if running && !self.wait_ended(&mut changes, &id).await {
                        continue;
                    }
                    if running && !outage {
                        outage = true;
                        let cause = broke
                            .as_ref()
                            .map(|e| chain(e))
                            .unwrap_or_else(|| "the server closed it".into());
                        let from = match at {
                            Some(p) => format!("after the last line shown ({})", p.at),
                            None => "from its start".into(),
                        };
                        self.note(format!(
                            "the log stream of container {} ended while it runs ({cause}); resuming {from}: lines the kubelet rotated away meanwhile are missing",
                            self.container
                        ))
                        .await;
                    }
                    if !self.wait(&mut changes, Some(retry)).await {
                        return;
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// The pod while it is in the set (the same pod: a new one may reuse the name).
    fn pod_now(&self) -> Option<Arc<Pod>> {
        self.pods
            .get(&self.pod)
            .filter(|p| p.uid().as_deref() == Some(self.uid.as_str()))
    }

    /// Waits up to [`SETTLE`] for the status to say that run `id` stopped running; true
    /// when it still runs (its stream broke), false when it ended or the pod went.
    async fn wait_ended(&self, changes: &mut watch::Receiver<WatchState>, id: &str) -> bool {
        let runs = |f: &Follower| {
            f.pod_now()
                .and_then(|p| status(&p, &f.container))
                .is_some_and(|cs| {
                    cs.container_id.as_deref() == Some(id)
                        && cs.state.as_ref().is_some_and(|s| s.running.is_some())
                })
        };
        let settled = tokio::time::timeout(SETTLE, async {
            while runs(self) {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        settled.is_err() && runs(self)
    }

    /// Waits for the pod set to change, or `limit`; false on shutdown.
    async fn wait(
        &self,
        changes: &mut watch::Receiver<WatchState>,
        limit: Option<Duration>,
    ) -> bool {
        let timer = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            r = changes.changed() => r.is_ok(),
            _ = timer => true,
        }
    }

    /// Reads one stream of the container's log (the current run followed, or the previous
    /// run), after `at`, moving `at` along.
    async fn read(&self, previous: bool, at: &mut Option<Position>) -> Result<Read, LogError> {
        let params = LogParams {
            container: Some(self.container.clone()),
            follow: !previous,
            previous,
            timestamps: true,
            since_time: at.map(|p| since(p.at)),
            ..LogParams::default()
        };
        let opened = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(Read::Stopped),
            o = self.pods.api().log_stream(&self.pod, &params) => o,
        };
        let stream = opened.map_err(|source| LogError::Open {
            pod: self.pod.clone(),
            container: self.container.clone(),
            source,
        })?;
        let mut stream = std::pin::pin!(stream);
        let mut skip = Skip::new(*at);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(Read::Stopped),
                n = stream.read_until(b'\n', &mut raw) => n,
            };
            let n = n.map_err(|source| LogError::Read {
                pod: self.pod.clone(),
                container: self.container.clone(),
                source,
            })?;
            if n == 0 {
                return Ok(Read::Ended);
            }
            // A followed stream that breaks mid-line: the resumed stream sends that line
            // again whole, so this piece is neither passed on nor counted as seen.
            if !previous && raw.last() != Some(&b'\n') {
                return Ok(Read::Ended);
            }
            let (ts, text) = parse(&raw);
            if skip.seen(ts) {
                continue;
            }
            if let Some(ts) = ts {
                *at = Some(Position::after(*at, ts));
            }
            if !self.send(text).await {
                return Ok(Read::Stopped);
            }
        }
    }

    async fn send(&self, text: String) -> bool {
        let line = LogLine {
            resource: self.resource.clone(),
            pod: self.pod.clone(),
            container: self.container.clone(),
            text,
        };
        self.line_tx.send(line).await.is_ok()
    }

    async fn note(&self, text: String) {
        let _ = self.send(format!("{NOTE}{text}")).await;
    }
}

/// The status of `container` in `pod`, init containers included.
fn status(pod: &Pod, container: &str) -> Option<ContainerStatus> {
    let s = pod.status.as_ref()?;
    s.init_container_statuses
        .iter()
        .flatten()
        .chain(s.container_statuses.iter().flatten())
        .find(|cs| cs.name == container)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: serde_json::Value) -> ContainerStatus {
        let mut base = serde_json::json!({"name": "web", "image": "i", "imageID": "", "ready": false, "restartCount": 0});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).expect("a valid container status")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn lines_that_are_not_utf8_are_kept_lossily_with_their_time() {
        let (at, text) = parse(b"2026-12-01T21:00:00.123456789Z caf\xe9 \xff\n");
        assert_eq!(at, Some(ts("2026-12-01T21:00:00.123456789Z")));
        assert_eq!(text, "caf\u{fffd} \u{fffd}");
        assert_eq!(
            parse(b"no timestamp here\r\n"),
            (None, "no timestamp here".into())
        );
        assert_eq!(
            parse(b"2026-12-01T21:00:00Z\n"),
            (Some(ts("2026-12-01T21:00:00Z")), String::new())
        );
    }

    #[test]
    fn a_stream_resumes_from_the_second_at_or_before_the_last_line() {
        // Rounded to the nearest second, .54 would become :54 and lose what came at .84.
        assert_eq!(
            since(ts("2026-12-02T17:57:53.540246319Z")),
            ts("2026-12-02T17:57:53Z")
        );
        assert_eq!(
            since(ts("2026-12-02T17:57:53Z")),
            ts("2026-12-02T17:57:53Z")
        );
    }

    #[test]
    fn a_resumed_stream_skips_exactly_what_was_passed_on() {
        let second = ts("2026-12-01T21:00:01Z");
        let last = ts("2026-12-01T21:00:01.5Z");
        // Two lines were passed on at `last`; the resumed stream repeats the whole second.
        let mut at = Position::after(None, second);
        at = Position::after(Some(at), last);
        at = Position::after(Some(at), last);
        assert_eq!(at, Position { at: last, same: 2 });
        let mut skip = Skip::new(Some(at));
        let seen: Vec<bool> = [second, last, last, last, ts("2026-12-01T21:00:02Z")]
            .into_iter()
            .map(|t| skip.seen(Some(t)))
            .collect();
        assert_eq!(seen, [true, true, true, false, false]);
        assert!(
            !Skip::new(None).seen(Some(second)),
            "a fresh stream skips nothing"
        );
    }

    #[test]
    fn runs_are_read_oldest_first_and_each_to_its_end() {
        let running = status(serde_json::json!({
            "containerID": "c://2", "restartCount": 1, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 3, "containerID": "c://1"}}
        }));
        let mut done = HashSet::new();
        // The run that died before it was seen (or while its stream was down) comes first.
        assert_eq!(next(&running, &done), Next::Previous("c://1".into()));
        done.insert("c://1".to_owned());
        assert_eq!(
            next(&running, &done),
            Next::Current {
                id: "c://2".into(),
                running: true
            }
        );

        // A crash loop: between runs only the last run is readable, through `previous`.
        let waiting = status(serde_json::json!({
            "containerID": "c://2", "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 3, "containerID": "c://2"}}
        }));
        assert_eq!(next(&waiting, &done), Next::Previous("c://2".into()));
        done.insert("c://2".to_owned());
        assert_eq!(next(&waiting, &done), Next::Wait);

        // Dead and not restarted (yet): the current run, read to its end.
        let exited = status(serde_json::json!({
            "containerID": "c://3", "state": {"terminated": {"exitCode": 0, "containerID": "c://3"}}
        }));
        assert_eq!(
            next(&exited, &done),
            Next::Current {
                id: "c://3".into(),
                running: false
            }
        );
        assert_eq!(
            exit(ended(&exited, "c://3")),
            "exit code 0",
            "how the run ended is known"
        );
        assert_eq!(
            next(
                &status(serde_json::json!({"state": {"waiting": {}}})),
                &done
            ),
            Next::Wait
        );
    }
}
