//! Timers as stream time passes them: every timer due fires (a fired timer is gone
//! whatever its handler does), in rounds while handlers schedule more that are already
//! due, and a failed timer call is split like a failed batch down to the one timer that
//! failed, which is dead-lettered.

use anyhow::Result;

use super::classify::classify;
use super::{DeadLetter, Origin, Run, with_instance};
use crate::model::failure::{Failure, FailureKind};
use crate::model::record::Record;
use crate::sandbox::bindings::FiredTimer;

/// At most this many rounds of timers fire between two events; a function that keeps
/// scheduling timers already due gets the rest after the next event.
pub(super) const TIMER_ROUNDS: usize = 64;

/// Most timers handed to one call.
const TIMERS_PER_CALL: usize = 1000;

impl Run<'_> {
    /// Fires timers due at `stream_time`, in rounds, as long as handlers schedule more.
    pub(super) fn fire_due_timers(&mut self, stream_time: i64) -> Result<()> {
        for _ in 0..TIMER_ROUNDS {
            let due = self.state().due_timers(stream_time, TIMERS_PER_CALL)?;
            if due.is_empty() {
                return Ok(());
            }
            for (_, key) in &due {
                self.state().set_timer(key.clone(), None);
            }
            self.state().accept_current();
            let fired: Vec<FiredTimer> = due
                .into_iter()
                .map(|(at_ms, key)| FiredTimer { key, at_ms })
                .collect();
            self.timers(&fired, stream_time)?;
        }
        Ok(())
    }

    fn timers(&mut self, fired: &[FiredTimer], stream_time: i64) -> Result<()> {
        let partition = self.partition;
        let result = with_instance(self.dispatcher, &mut self.state, |instance, state| {
            instance.on_timers(state, partition, stream_time, fired)
        })?;
        self.out.stats.calls += 1;
        let failure = match result {
            Ok((Ok(()), fuel)) => {
                self.out.stats.fuel += fuel;
                self.state().accept_current();
                self.out.stats.timers_fired += fired.len() as u64;
                return Ok(());
            }
            Ok((Err(reason), fuel)) => {
                self.out.stats.fuel += fuel;
                Failure::new(FailureKind::Rejected, reason)
            }
            Err(failure) => {
                self.dispatcher.discard();
                classify(failure, &self.dispatcher.limits)?
            }
        };
        self.state().discard_current();
        if fired.len() > 1 {
            for timer in fired {
                self.timers(std::slice::from_ref(timer), stream_time)?;
            }
            return Ok(());
        }
        let timer = &fired[0];
        *self.out.stats.failures.entry(failure.kind).or_default() += 1;
        self.out.dead_letters.push(DeadLetter {
            origin: Origin::Timer {
                key: timer.key.clone(),
                at_ms: timer.at_ms,
            },
            record: Record {
                timestamp_ms: timer.at_ms,
                key: Some(timer.key.clone()),
                value: None,
                headers: Vec::new(),
            },
            failure,
        });
        Ok(())
    }
}
