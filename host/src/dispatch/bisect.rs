//! Finding the events that failed a call: a failed call is run again on halves of its
//! events (one at a time when it ran out of fuel or time, so the limit is spent once more,
//! on the culprit alone) until each failure is pinned on one event, which is then settled
//! alone; every other event keeps its effects. A call whose events passed the time of a
//! timer one of them scheduled is run again on the events up to there, so the timer fires
//! right after the event that reached it, whatever the batch.

use anyhow::Result;

use super::classify::classify;
use super::{DeadLetter, Flow, Origin, RetryRequest, Run, with_instance};
use crate::model::failure::{Failure, FailureKind};
use crate::model::record::Record;
use crate::sandbox::bindings::Outcome;

impl Run<'_> {
    /// Runs events `lo..hi`, splitting on failure. Stops at an event that asks for a retry,
    /// and before an event that a timer scheduled by an earlier one came due at.
    pub(super) fn range(&mut self, lo: usize, hi: usize) -> Result<Flow> {
        match self.call(lo, hi)? {
            Ok(outcomes) if outcomes.iter().all(|o| matches!(o, Outcome::Ok)) => {
                if let Some(cut) = self.timer_overrun(lo, hi)? {
                    self.state().discard_current();
                    return Ok(match self.range(lo, cut)? {
                        Flow::Continue => Flow::Until(cut),
                        flow => flow,
                    });
                }
                self.state().accept_current();
                self.out.stats.handled += (hi - lo) as u64;
                Ok(Flow::Continue)
            }
            Ok(outcomes) => {
                self.state().discard_current();
                if hi - lo == 1 {
                    let outcome = outcomes.into_iter().next().unwrap_or(Outcome::Ok);
                    return Ok(self.settle(lo, outcome));
                }
                // Events between the failed ones are run again without them, and each
                // failed one alone, since its outcome may have depended on the others.
                let mut start = lo;
                for (i, outcome) in outcomes.iter().enumerate() {
                    if matches!(outcome, Outcome::Ok) {
                        continue;
                    }
                    let failed = lo + i;
                    for (a, b) in [(start, failed), (failed, failed + 1)] {
                        if a < b {
                            match self.range(a, b)? {
                                Flow::Continue => {}
                                flow => return Ok(flow),
                            }
                        }
                    }
                    start = failed + 1;
                }
                if start < hi {
                    return self.range(start, hi);
                }
                Ok(Flow::Continue)
            }
            Err(failure) => {
                self.state().discard_current();
                if hi - lo == 1 {
                    self.dead_letter_event(lo, failure);
                    return Ok(Flow::Continue);
                }
                if failure.kind.is_exhaustion() {
                    // Halving would spend the whole deadline again at every step; one
                    // event at a time spends it once more, on the culprit alone.
                    for i in lo..hi {
                        if let Flow::Stopped = self.range(i, i + 1)? {
                            return Ok(Flow::Stopped);
                        }
                    }
                    return Ok(Flow::Continue);
                }
                let mid = lo + (hi - lo) / 2;
                match self.range(lo, mid)? {
                    Flow::Continue => self.range(mid, hi),
                    flow => Ok(flow),
                }
            }
        }
    }

    /// Where a call of events `lo..hi` should have ended: just after the first event whose
    /// stream time reached a timer the call scheduled, when events came after it. The
    /// timers pending before the call cut the segment already.
    fn timer_overrun(&mut self, lo: usize, hi: usize) -> Result<Option<usize>> {
        let Some(next_timer) = self.state().earliest_timer()? else {
            return Ok(None);
        };
        Ok(self.events[lo..hi - 1]
            .iter()
            .position(|e| e.stream_time_ms >= next_timer)
            .map(|i| lo + i + 1))
    }

    /// What to do with a single event's non-ok outcome.
    fn settle(&mut self, index: usize, outcome: Outcome) -> Flow {
        match outcome {
            Outcome::Ok => Flow::Continue,
            Outcome::Reject(reason) => {
                self.dead_letter_event(index, Failure::new(FailureKind::Rejected, reason));
                Flow::Continue
            }
            Outcome::Retry(reason) if self.retries_spent == Some(index) => {
                self.dead_letter_event(index, Failure::new(FailureKind::RetryExhausted, reason));
                Flow::Continue
            }
            Outcome::Retry(reason) => {
                let event = &self.events[index];
                self.out.retry = Some(RetryRequest {
                    topic: event.topic.clone(),
                    offset: event.offset,
                    reason,
                });
                self.out.processed = index;
                if index > 0 {
                    self.out.stream_time_ms = self.events[index - 1].stream_time_ms;
                }
                Flow::Stopped
            }
        }
    }

    pub(super) fn dead_letter_event(&mut self, index: usize, failure: Failure) {
        *self.out.stats.failures.entry(failure.kind).or_default() += 1;
        let event = &self.events[index];
        // The record as it came, not as the function saw it decoded.
        let record = self.originals.remove(&index).unwrap_or_else(|| Record {
            timestamp_ms: event.timestamp_ms,
            key: event.key.clone(),
            value: event.value.clone(),
            headers: event
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        });
        self.out.dead_letters.push(DeadLetter {
            origin: Origin::Event {
                topic: event.topic.clone(),
                offset: event.offset,
            },
            record,
            failure,
        });
    }

    /// One call of the handler on events `lo..hi`. The outer error is fatal for the batch;
    /// the inner one is a failure of the guest.
    fn call(&mut self, lo: usize, hi: usize) -> Result<Result<Vec<Outcome>, Failure>> {
        let events = &self.events[lo..hi];
        let result = with_instance(self.dispatcher, &mut self.state, |instance, state| {
            instance.handle(state, events)
        })?;
        self.out.stats.calls += 1;
        match result {
            Ok((outcomes, fuel)) => {
                self.out.stats.fuel += fuel;
                if outcomes.len() != hi - lo {
                    self.dispatcher.discard();
                    return Ok(Err(Failure::new(
                        FailureKind::Trap,
                        format!(
                            "the handler returned {} outcomes for {} events",
                            outcomes.len(),
                            hi - lo
                        ),
                    )));
                }
                Ok(Ok(outcomes))
            }
            Err(failure) => {
                self.dispatcher.discard();
                Ok(Err(classify(failure, &self.dispatcher.limits)?))
            }
        }
    }
}
