//! The heartbeat's settings and the smoothed round-trip time its deadline follows.
//!
//! Pings carry the sender's clock, Pongs bring it back: `RttEstimate::sample` is fed by the
//! session's reader, [`Heartbeat::dead_after`] read by its heartbeat task.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// How often a quiet side pings, and the bounds of how long a silent peer is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval: Duration,
    /// The shortest deadline: what a normal link gets, so a vanished peer is noticed within
    /// `floor + interval`.
    pub floor: Duration,
    /// The longest deadline however slow the link looks, so a peer that forges slow round
    /// trips cannot keep a dead session alive for long.
    pub limit: Duration,
}

impl Default for Heartbeat {
    /// A vanished peer on a normal link is noticed within a second (`floor` plus one
    /// `interval`).
    fn default() -> Heartbeat {
        Heartbeat {
            interval: Duration::from_millis(200),
            floor: Duration::from_millis(800),
            limit: Duration::from_secs(5),
        }
    }
}

impl Heartbeat {
    /// How many smoothed round trips of silence a live peer may show: one late heartbeat,
    /// its retransmission and some queueing.
    pub const RTT_FACTOR: u32 = 4;

    /// The silence after which the peer counts as gone, given the smoothed round trip:
    /// `clamp(4 × srtt + interval, floor, limit)`; the floor when nothing was measured.
    pub fn dead_after(&self, srtt: Option<Duration>) -> Duration {
        let derived = srtt.map_or(Duration::ZERO, |r| {
            r.saturating_mul(Self::RTT_FACTOR) + self.interval
        });
        derived.max(self.floor).min(self.limit.max(self.floor))
    }
}

/// The smoothed round-trip time (RFC 6298's α = 1/8), shared between the session's reader
/// (which feeds it) and its heartbeat (which reads it).
#[derive(Debug, Default)]
pub(crate) struct RttEstimate {
    /// Microseconds; 0 while nothing was measured.
    srtt_us: AtomicU64,
}

impl RttEstimate {
    pub(crate) fn sample(&self, rtt: Duration) {
        let us = (rtt.as_micros() as u64).max(1);
        let old = self.srtt_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { old - old / 8 + us / 8 };
        self.srtt_us.store(new.max(1), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<Duration> {
        match self.srtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_deadline_is_the_floor_on_a_fast_link_and_grows_with_round_trips() {
        let hb = Heartbeat::default();
        assert_eq!(hb.dead_after(None), 800 * MS);
        assert_eq!(hb.dead_after(Some(MS)), 800 * MS);
        assert_eq!(hb.dead_after(Some(300 * MS)), 1400 * MS);
        assert_eq!(hb.dead_after(Some(60_000 * MS)), hb.limit);
        let odd = Heartbeat {
            limit: MS,
            ..Heartbeat::default()
        };
        assert_eq!(
            odd.dead_after(Some(300 * MS)),
            800 * MS,
            "the floor wins a low limit"
        );
    }

    #[test]
    fn the_estimate_starts_at_the_first_sample_and_moves_an_eighth() {
        let e = RttEstimate::default();
        assert_eq!(e.get(), None);
        e.sample(300 * MS);
        assert_eq!(e.get(), Some(300 * MS));
        e.sample(1100 * MS);
        assert_eq!(e.get(), Some(400 * MS));
    }
}
