//! Committed state and timers of one function partition, read from a snapshot of the
//! embedded store taken when the batch starts.

use anyhow::Result;
use redb::{ReadOnlyTable, ReadTransaction};

use super::tables::{STATE, TIMER_KEYS, TIMERS};
use crate::state::CommittedState;

/// A snapshot of one function partition's state.
pub struct SnapshotState {
    function: String,
    partition: u32,
    state: ReadOnlyTable<(&'static str, u32, &'static [u8]), &'static [u8]>,
    timers: ReadOnlyTable<(&'static str, u32, i64, &'static [u8]), ()>,
    timer_keys: ReadOnlyTable<(&'static str, u32, &'static [u8]), i64>,
}

impl SnapshotState {
    /// The state of `function`'s `partition` as of `txn`.
    pub fn new(txn: &ReadTransaction, function: &str, partition: u32) -> Result<Self> {
        Ok(SnapshotState {
            function: function.to_owned(),
            partition,
            state: txn.open_table(STATE)?,
            timers: txn.open_table(TIMERS)?,
            timer_keys: txn.open_table(TIMER_KEYS)?,
        })
    }
}

impl CommittedState for SnapshotState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self
            .state
            .get((self.function.as_str(), self.partition, key))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let from = start_after.filter(|a| *a >= prefix).unwrap_or(prefix);
        let mut entries = Vec::new();
        for item in self
            .state
            .range((self.function.as_str(), self.partition, from)..)?
        {
            let (key, value) = item?;
            let (function, partition, key) = key.value();
            if function != self.function || partition != self.partition || !key.starts_with(prefix)
            {
                break;
            }
            if start_after.is_some_and(|a| key <= a) {
                continue;
            }
            entries.push((key.to_vec(), value.value().to_vec()));
            if entries.len() == limit {
                break;
            }
        }
        Ok(entries)
    }

    fn timer(&self, key: &[u8]) -> Result<Option<i64>> {
        let at = self
            .timer_keys
            .get((self.function.as_str(), self.partition, key))?;
        Ok(at.map(|a| a.value()))
    }

    fn timers_after(
        &self,
        after: Option<(i64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let (from_at, from_key) = after.unwrap_or((i64::MIN, &[]));
        let mut timers = Vec::new();
        for item in self
            .timers
            .range((self.function.as_str(), self.partition, from_at, from_key)..)?
        {
            let (key, ()) = item.map(|(k, v)| (k, v.value()))?;
            let (function, partition, at, key) = key.value();
            if function != self.function || partition != self.partition {
                break;
            }
            if after.is_some_and(|(a, k)| (at, key) <= (a, k)) {
                continue;
            }
            timers.push((at, key.to_vec()));
            if timers.len() == limit {
                break;
            }
        }
        Ok(timers)
    }
}
