//! Committed state kept in memory: for tests and benches, and for a partition that
//! starts empty.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{CommittedState, scan_page, scan_start};

/// Committed state kept in memory: for tests, and for a partition that starts empty.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    /// State entries.
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Timers by key.
    pub timers: BTreeMap<Vec<u8>, i64>,
}

impl CommittedState for MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.state.get(key).cloned())
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.state.get(key).map(Vec::len))
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let entries = self
            .state
            .range(scan_start(prefix, start_after).to_vec()..)
            .map(|(k, v)| Ok((k.clone(), v.clone())));
        scan_page(entries, prefix, start_after, limit)
    }

    fn timer(&self, key: &[u8]) -> Result<Option<i64>> {
        Ok(self.timers.get(key).copied())
    }

    fn held_bytes(&self) -> Result<u64> {
        Ok(self
            .state
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum())
    }

    fn timers_after(
        &self,
        after: Option<(i64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut all: Vec<(i64, Vec<u8>)> =
            self.timers.iter().map(|(k, at)| (*at, k.clone())).collect();
        all.sort();
        Ok(all
            .into_iter()
            .filter(|(at, k)| after.is_none_or(|(a, ak)| (*at, k.as_slice()) > (a, ak)))
            .take(limit)
            .collect())
    }
}
