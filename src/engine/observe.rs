//! What follows a deployed resource: one [`PodSet`] per workload, shared by its
//! forwards, its log followers and its readiness, and after each apply a
//! [`Observer`] with the task that turns its observations into events.
//!
//! The events keep the state store current for as long as the resource is deployed, not
//! only while a round waits for it: pod counts and restarts on every change, and once the
//! round is over (`settled`), a pod that stops being ready (a crash loop an hour after the
//! rollout) as [`Event::Waiting`] with the reason, and its recovery as [`Event::Ready`].

use std::collections::BTreeSet;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::event::Event;
use crate::{
    deploy::{
        Workload,
        rollout::{Observed, Observer},
    },
    kube::PodSet,
    logs,
};

/// The watches of one deployed resource; dropping it stops them.
pub(super) struct Observing {
    workloads: Vec<Workload>,
    sets: Vec<PodSet>,
    /// Stops the log followers.
    _logs: DropGuard,
    /// The rollout of the last apply and the task reporting it.
    rollout: Option<(Observer, DropGuard)>,
}

impl Observing {
    /// Starts watching the pods of `workloads` and following their logs.
    pub fn start(
        client: &kube::Client,
        resource: &str,
        workloads: &[Workload],
        log_tx: &mpsc::Sender<logs::LogLine>,
        shutdown: &CancellationToken,
    ) -> Observing {
        let sets: Vec<PodSet> = workloads
            .iter()
            .map(|w| PodSet::watch(client.clone(), w.clone()))
            .collect();
        let stop_logs = shutdown.child_token();
        for set in &sets {
            tokio::spawn(logs::follow(
                set.clone(),
                resource.to_owned(),
                log_tx.clone(),
                stop_logs.clone(),
            ));
        }
        Observing {
            workloads: workloads.to_vec(),
            sets,
            _logs: stop_logs.drop_guard(),
            rollout: None,
        }
    }

    pub fn workloads(&self) -> &[Workload] {
        &self.workloads
    }

    /// The pods that forwards send traffic to.
    pub fn forward_target(&self) -> Option<PodSet> {
        self.sets.first().cloned()
    }

    /// Observes the rollout of an apply that just returned, in place of the last one. A
    /// fresh observer lists the workloads after the apply, so it never reports the
    /// previous version as rolled out.
    pub fn applied(
        &mut self,
        client: &kube::Client,
        resource: &str,
        settled: watch::Receiver<BTreeSet<String>>,
        event_tx: &mpsc::UnboundedSender<Event>,
        shutdown: &CancellationToken,
    ) -> watch::Receiver<Observed> {
        let observer = Observer::start(client.clone(), self.sets.clone());
        let observed = observer.observed();
        let stop = shutdown.child_token();
        tokio::spawn(report(
            resource.to_owned(),
            observed.clone(),
            settled,
            event_tx.clone(),
            stop.clone(),
        ));
        self.rollout = Some((observer, stop.drop_guard()));
        observed
    }
}

/// Turns observations into events: counts always; readiness once `settled` (the round
/// that deployed the resource reported it ready), before that the round speaks.
async fn report(
    resource: String,
    mut observed: watch::Receiver<Observed>,
    mut settled: watch::Receiver<BTreeSet<String>>,
    event_tx: mpsc::UnboundedSender<Event>,
    stop: CancellationToken,
) {
    let mut shown = None;
    // The reason last reported for a settled resource that is not ready any more.
    let mut degraded: Option<String> = None;
    loop {
        let now = observed.borrow_and_update().clone();
        let is_settled = settled.borrow_and_update().contains(&resource);
        let mut events = Vec::new();
        let pods = (now.counts, now.replicas.clone());
        if shown.as_ref() != Some(&pods) {
            events.push(Event::Pods {
                resource: resource.clone(),
                counts: now.counts,
                replicas: now.replicas.clone(),
            });
            shown = Some(pods);
        }
        match verdict(&now) {
            // Pods not listed yet are not known to be unready: the round that settled an
            // unchanged workload did not wait for the list, and saying `0 of 0 pods
            // ready` right after its `ready` would be a degradation that never happened.
            _ if !is_settled || !now.listed => degraded = None,
            None => {
                if degraded.take().is_some() {
                    events.push(Event::Ready {
                        resource: resource.clone(),
                        update: None,
                    });
                }
            }
            Some(reason) if degraded.as_deref() != Some(reason.as_str()) => {
                degraded = Some(reason.clone());
                events.push(Event::Waiting {
                    resource: resource.clone(),
                    reason,
                });
            }
            Some(_) => {}
        }
        for e in events {
            if event_tx.send(e).is_err() {
                return;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = observed.changed() => if r.is_err() { return },
            r = settled.changed() => if r.is_err() { return },
        }
    }
}

/// Why a deployed resource is not ready now, or `None` when it is.
fn verdict(o: &Observed) -> Option<String> {
    if o.pods_ready && o.rolled_out {
        return None;
    }
    Some(match &o.trouble {
        Some(t) => t.reason.clone(),
        None if !o.pods_ready => format!("{} of {} pods ready", o.counts.ready, o.counts.total),
        None => "its controller does not report every replica available yet".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::rollout::{NotReady, PodCounts};

    #[test]
    fn a_resource_is_ready_only_when_its_pods_and_its_controller_say_so() {
        let ready = Observed {
            counts: PodCounts {
                ready: 1,
                total: 1,
                restarts: 0,
            },
            replicas: vec![],
            rolled_out: true,
            listed: true,
            pods_ready: true,
            trouble: None,
        };
        assert_eq!(verdict(&ready), None);
        let crashed = Observed {
            counts: PodCounts {
                ready: 0,
                total: 1,
                restarts: 1,
            },
            pods_ready: false,
            trouble: Some(NotReady {
                reason: "pod web-1: container web exited (exit code 3, Error)".into(),
                fatal: false,
            }),
            ..ready.clone()
        };
        assert_eq!(
            verdict(&crashed).as_deref(),
            Some("pod web-1: container web exited (exit code 3, Error)")
        );
        let unexplained = Observed {
            trouble: None,
            ..crashed
        };
        assert_eq!(verdict(&unexplained).as_deref(), Some("0 of 1 pods ready"));
    }

    #[tokio::test]
    async fn a_settled_resource_whose_pods_are_not_listed_yet_is_not_said_to_wait() {
        // An unchanged Deployment: rolled out at once, its pods not listed yet.
        let (observed_tx, observed) = watch::channel(Observed {
            rolled_out: true,
            ..Observed::default()
        });
        let (_settled_tx, settled) = watch::channel(BTreeSet::from(["web".to_owned()]));
        let (event_tx, mut events) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(report(
            "web".into(),
            observed,
            settled,
            event_tx,
            stop.clone(),
        ));
        let first = events.recv().await.expect("an event");
        assert!(
            matches!(&first, Event::Pods { counts, .. } if counts.total == 0),
            "{first:?}"
        );
        let one = PodCounts {
            ready: 1,
            total: 1,
            restarts: 0,
        };
        observed_tx
            .send(Observed {
                counts: one,
                rolled_out: true,
                listed: true,
                pods_ready: true,
                ..Observed::default()
            })
            .expect("report listens");
        let next = events.recv().await.expect("an event");
        assert!(
            matches!(&next, Event::Pods { counts, .. } if *counts == one),
            "no `waiting` before the pods are listed, and no `ready` after: {next:?}"
        );
        stop.cancel();
        task.await.expect("report ends");
        assert!(events.try_recv().is_err(), "nothing more");
    }
}
