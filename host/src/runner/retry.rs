//! The retry hold: an event whose handler asked for a retry holds its partition back for
//! a backoff that doubles with each attempt, and once its retries are spent its next
//! retry outcome makes it a dead letter instead. Other partitions run on meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::dispatch::RetryRequest;
use crate::model::limits::Limits;

/// An event held back after it asked for a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    topic: String,
    offset: u64,
    attempts: u32,
    until: Instant,
}

/// The held events of one function, at most one per partition (a partition stops at the
/// event that asked for a retry).
#[derive(Debug, Default)]
pub struct RetryHold {
    held: BTreeMap<u32, Held>,
}

impl RetryHold {
    /// Whether `partition` is still waiting out a backoff at `now`.
    pub fn waiting(&self, partition: u32, now: Instant) -> bool {
        self.held.get(&partition).is_some_and(|h| h.until > now)
    }

    /// The held event of `partition` (topic, offset) if it has had all its retries: its
    /// next retry outcome is a dead letter.
    pub fn spent(&self, partition: u32, limits: &Limits) -> Option<(String, u64)> {
        self.held
            .get(&partition)
            .filter(|h| h.attempts >= limits.max_retries)
            .map(|h| (h.topic.clone(), h.offset))
    }

    /// Takes in how a committed run of `partition` ended: holds the event that asked for
    /// a retry (counting its attempts when it is the one already held), or releases the
    /// partition when none did. Returns the attempts of a held event.
    pub fn settle(
        &mut self,
        partition: u32,
        retry: Option<&RetryRequest>,
        limits: &Limits,
        now: Instant,
    ) -> Option<u32> {
        let Some(retry) = retry else {
            self.held.remove(&partition);
            return None;
        };
        let attempts = self
            .held
            .get(&partition)
            .filter(|h| h.topic == retry.topic && h.offset == retry.offset)
            .map_or(1, |h| h.attempts + 1);
        self.held.insert(
            partition,
            Held {
                topic: retry.topic.clone(),
                offset: retry.offset,
                attempts,
                until: now + limits.backoff(attempts),
            },
        );
        Some(attempts)
    }

    /// Time from `now` until the earliest held event may be delivered again.
    pub fn next_release(&self, now: Instant) -> Option<Duration> {
        self.held
            .values()
            .map(|h| h.until.saturating_duration_since(now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(offset: u64) -> RetryRequest {
        RetryRequest {
            topic: "orders".into(),
            offset,
            reason: "inventory service down".into(),
        }
    }

    #[test]
    fn a_retry_holds_its_partition_for_a_doubling_backoff_then_its_retries_are_spent() {
        let limits = Limits {
            max_retries: 3,
            retry_backoff_ms: 100,
            ..Limits::default()
        };
        let mut hold = RetryHold::default();
        let t0 = Instant::now();
        for (attempt, backoff_ms) in [(1, 100), (2, 200), (3, 400)] {
            assert_eq!(hold.spent(0, &limits), None, "attempt {attempt}");
            let now = t0 + Duration::from_secs(attempt);
            assert_eq!(
                hold.settle(0, Some(&retry(7)), &limits, now),
                Some(attempt as u32)
            );
            assert!(hold.waiting(0, now + Duration::from_millis(backoff_ms - 1)));
            assert!(!hold.waiting(0, now + Duration::from_millis(backoff_ms)));
            assert_eq!(
                hold.next_release(now),
                Some(Duration::from_millis(backoff_ms))
            );
            assert!(!hold.waiting(1, now), "other partitions run on");
        }
        assert_eq!(hold.spent(0, &limits), Some(("orders".into(), 7)));
    }

    #[test]
    fn another_event_starts_counting_afresh_and_success_releases() {
        let limits = Limits::default();
        let mut hold = RetryHold::default();
        let now = Instant::now();
        hold.settle(2, Some(&retry(7)), &limits, now);
        hold.settle(2, Some(&retry(7)), &limits, now);
        assert_eq!(hold.settle(2, Some(&retry(8)), &limits, now), Some(1));
        assert_eq!(hold.settle(2, None, &limits, now), None);
        assert!(!hold.waiting(2, now));
        assert_eq!(hold.spent(2, &limits), None);
        assert_eq!(hold.next_release(now), None);
    }
}
