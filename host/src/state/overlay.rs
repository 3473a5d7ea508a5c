//! A partition's state as a call sees it: the batch's current and accepted effects over
//! what is committed. Accepting or discarding a call's effects is how a failed event
//! leaves nothing behind.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{CommittedState, MAX_SCAN};
use crate::model::effects::Effects;

/// A partition's state seen through the effects of the batch being run.
pub struct PartitionState {
    base: Box<dyn CommittedState>,
    /// Bytes the committed state holds, read when first needed.
    base_bytes: std::cell::OnceCell<u64>,
    /// Effects of calls that succeeded earlier in this batch.
    pub accepted: Effects,
    /// Effects of the call under way.
    pub current: Effects,
    /// What the accepted and the current writes add to the bytes held.
    accepted_growth: i64,
    current_growth: i64,
}

impl PartitionState {
    /// A view over `base` with no pending effects.
    pub fn new(base: Box<dyn CommittedState>) -> Self {
        PartitionState {
            base,
            base_bytes: std::cell::OnceCell::new(),
            accepted: Effects::default(),
            current: Effects::default(),
            accepted_growth: 0,
            current_growth: 0,
        }
    }

    /// Keeps the current call's effects.
    pub fn accept_current(&mut self) {
        let current = std::mem::take(&mut self.current);
        self.accepted.absorb(current);
        self.accepted_growth += std::mem::take(&mut self.current_growth);
    }

    /// Drops the current call's effects.
    pub fn discard_current(&mut self) {
        self.current = Effects::default();
        self.current_growth = 0;
    }

    fn pending_state(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.current
            .state
            .get(key)
            .or_else(|| self.accepted.state.get(key))
    }

    fn pending_timer(&self, key: &[u8]) -> Option<Option<i64>> {
        self.current
            .timers
            .get(key)
            .or_else(|| self.accepted.timers.get(key))
            .copied()
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.pending_state(key) {
            Some(pending) => Ok(pending.clone()),
            None => self.base.get(key),
        }
    }

    /// Up to `limit` (at most [`MAX_SCAN`]) entries under `prefix` after `start_after`.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        merge_scan(
            self.base.as_ref(),
            &[&self.accepted.state, &self.current.state],
            prefix,
            start_after,
            limit,
        )
    }

    /// What the accepted writes add to the bytes held.
    pub fn growth(&self) -> i64 {
        self.accepted_growth
    }

    /// Records a write in the current call.
    pub fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.current.state.insert(key, value);
    }

    /// Records a write in the current call, counting what it adds to the bytes held;
    /// returns the bytes the partition's state holds with it.
    pub fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<u64> {
        let old = match self.pending_state(&key) {
            Some(pending) => pending.as_ref().map(Vec::len),
            None => self.base.value_len(&key)?,
        };
        let size = |len: usize| (key.len() + len) as i64;
        let old = old.map_or(0, size);
        let new = value.as_ref().map_or(0, |v| size(v.len()));
        self.current_growth += new - old;
        self.set(key, value);
        self.held_bytes()
    }

    /// Bytes of keys and values the partition's state holds, pending writes included.
    pub fn held_bytes(&self) -> Result<u64> {
        let base = match self.base_bytes.get() {
            Some(bytes) => *bytes,
            None => {
                let bytes = self.base.held_bytes()?;
                let _ = self.base_bytes.set(bytes);
                bytes
            }
        };
        let held = base as i64 + self.accepted_growth + self.current_growth;
        Ok(held.max(0) as u64)
    }

    /// Records a timer change in the current call.
    pub fn set_timer(&mut self, key: Vec<u8>, at_ms: Option<i64>) {
        self.current.timers.insert(key, at_ms);
    }

    /// The time of the timer under `key`.
    pub fn timer(&self, key: &[u8]) -> Result<Option<i64>> {
        match self.pending_timer(key) {
            Some(pending) => Ok(pending),
            None => self.base.timer(key),
        }
    }

    /// Pending timers at or before `up_to`, in (time, key) order, at most `limit`.
    pub fn due_timers(&self, up_to: i64, limit: usize) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut due: Vec<(i64, Vec<u8>)> = Vec::new();
        for (key, at) in self
            .accepted
            .timers
            .keys()
            .chain(self.current.timers.keys())
            .filter_map(|k| self.pending_timer(k).flatten().map(|at| (k, at)))
        {
            if at <= up_to {
                due.push((at, key.clone()));
            }
        }
        due.sort();
        due.dedup();
        let mut after: Option<(i64, Vec<u8>)> = None;
        loop {
            let page = self
                .base
                .timers_after(after.as_ref().map(|(at, k)| (*at, k.as_slice())), limit)?;
            let full = page.len() == limit;
            for (at, key) in &page {
                if *at > up_to {
                    return Ok(finish(due, limit));
                }
                if self.pending_timer(key).is_none() {
                    due.push((*at, key.clone()));
                }
            }
            if !full || due.len() >= limit.saturating_mul(4) {
                return Ok(finish(due, limit));
            }
            after = page.last().cloned();
        }
    }

    /// The earliest pending timer's time.
    pub fn earliest_timer(&self) -> Result<Option<i64>> {
        let pending = self
            .accepted
            .timers
            .keys()
            .chain(self.current.timers.keys())
            .filter_map(|k| self.pending_timer(k).flatten())
            .min();
        let mut after: Option<(i64, Vec<u8>)> = None;
        loop {
            let page = self
                .base
                .timers_after(after.as_ref().map(|(at, k)| (*at, k.as_slice())), 64)?;
            if let Some((at, _)) = page
                .iter()
                .find(|(_, key)| self.pending_timer(key).is_none())
            {
                return Ok(Some(pending.map_or(*at, |p| p.min(*at))));
            }
            if page.len() < 64 {
                return Ok(pending);
            }
            after = page.last().cloned();
        }
    }
}

/// A scan of `base` with `layers` of pending writes over it, later layers winning: up to
/// `limit` (at most [`MAX_SCAN`]) live entries under `prefix` after `start_after`.
pub(super) fn merge_scan(
    base: &dyn CommittedState,
    layers: &[&BTreeMap<Vec<u8>, Option<Vec<u8>>>],
    prefix: &[u8],
    start_after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let limit = limit.min(MAX_SCAN);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let in_range =
        |k: &Vec<u8>| k.starts_with(prefix) && start_after.is_none_or(|a| k.as_slice() > a);
    let mut overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for layer in layers {
        for (k, v) in layer.iter().filter(|(k, _)| in_range(k)) {
            overlay.insert(k.clone(), v.clone());
        }
    }
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut cursor = start_after.map(<[u8]>::to_vec);
    // Committed entries are read a page at a time until `limit` live entries are
    // known to precede everything not read yet.
    let bound = loop {
        let page = base.scan(prefix, cursor.as_deref(), limit)?;
        let full = page.len() == limit;
        let last = page.last().map(|(k, _)| k.clone());
        merged.extend(page.into_iter().filter(|(k, _)| !overlay.contains_key(k)));
        if !full {
            break None;
        }
        cursor = last;
        let live_overlay = overlay
            .iter()
            .filter(|(k, v)| v.is_some() && Some(*k) <= cursor.as_ref())
            .count();
        if merged.len() + live_overlay >= limit {
            break cursor;
        }
    };
    for (k, v) in overlay {
        if let Some(v) = v
            && bound.as_ref().is_none_or(|b| &k <= b)
        {
            merged.insert(k, v);
        }
    }
    Ok(merged.into_iter().take(limit).collect())
}

fn finish(mut due: Vec<(i64, Vec<u8>)>, limit: usize) -> Vec<(i64, Vec<u8>)> {
    due.sort();
    due.truncate(limit);
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    fn base() -> MemoryState {
        let mut m = MemoryState::default();
        for i in 0..10u8 {
            m.state.insert(vec![b'k', i], vec![i]);
        }
        m.state.insert(b"z".to_vec(), b"other".to_vec());
        m.timers.insert(b"a".to_vec(), 30);
        m.timers.insert(b"b".to_vec(), 10);
        m
    }

    #[test]
    fn reads_see_current_then_accepted_then_committed() {
        let mut view = PartitionState::new(Box::new(base()));
        view.set(vec![b'k', 1], None);
        view.accept_current();
        view.set(vec![b'k', 2], Some(b"new".to_vec()));
        assert_eq!(view.get(&[b'k', 1]).expect("get"), None);
        assert_eq!(view.get(&[b'k', 2]).expect("get"), Some(b"new".to_vec()));
        assert_eq!(view.get(&[b'k', 3]).expect("get"), Some(vec![3]));
        view.discard_current();
        assert_eq!(view.get(&[b'k', 2]).expect("get"), Some(vec![2]));
    }

    #[test]
    fn scan_merges_pending_writes_in_key_order() {
        let mut view = PartitionState::new(Box::new(base()));
        view.set(vec![b'k', 0], None);
        view.set(vec![b'k', 1], None);
        view.set(vec![b'k', 5, 0], Some(b"ins".to_vec()));
        let page = view.scan(b"k", None, 3).expect("scan");
        let keys: Vec<Vec<u8>> = page.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![vec![b'k', 2], vec![b'k', 3], vec![b'k', 4]]);
        let rest = view.scan(b"k", Some(&[b'k', 4]), 100).expect("scan");
        let keys: Vec<Vec<u8>> = rest.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![
                vec![b'k', 5],
                vec![b'k', 5, 0],
                vec![b'k', 6],
                vec![b'k', 7],
                vec![b'k', 8],
                vec![b'k', 9]
            ]
        );
    }

    #[test]
    fn timers_respect_pending_changes() {
        let mut view = PartitionState::new(Box::new(base()));
        assert_eq!(view.earliest_timer().expect("earliest"), Some(10));
        view.set_timer(b"b".to_vec(), None);
        view.set_timer(b"c".to_vec(), Some(20));
        assert_eq!(view.earliest_timer().expect("earliest"), Some(20));
        let due = view.due_timers(30, 100).expect("due");
        assert_eq!(due, vec![(20, b"c".to_vec()), (30, b"a".to_vec())]);
        assert_eq!(view.due_timers(25, 100).expect("due").len(), 1);
    }

    #[test]
    fn a_scan_reads_past_a_page_of_pending_deletes() {
        let mut view = PartitionState::new(Box::new(base()));
        // The first committed page of three is deleted, partly in an earlier call.
        view.set(vec![b'k', 0], None);
        view.accept_current();
        view.set(vec![b'k', 1], None);
        view.set(vec![b'k', 2], None);
        let page = view.scan(b"k", None, 3).expect("scan");
        let keys: Vec<Vec<u8>> = page.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![vec![b'k', 3], vec![b'k', 4], vec![b'k', 5]]);
        assert!(view.scan(b"k", None, 0).expect("scan").is_empty());
        let all = view.scan(b"", None, usize::MAX).expect("scan");
        assert_eq!(all.len(), 8, "seven k-keys and z, capped by MAX_SCAN only");
        view.discard_current();
        assert_eq!(view.scan(b"k", None, 1).expect("scan")[0].0, vec![b'k', 1]);
    }

    #[test]
    fn accepted_timers_and_cancels_survive_a_discarded_call() {
        let mut view = PartitionState::new(Box::new(base()));
        view.set_timer(b"a".to_vec(), None);
        view.accept_current();
        view.set_timer(b"b".to_vec(), Some(99));
        view.discard_current();
        assert_eq!(view.timer(b"a").expect("timer"), None, "cancelled earlier");
        assert_eq!(
            view.timer(b"b").expect("timer"),
            Some(10),
            "the change is gone"
        );
        assert_eq!(
            view.due_timers(i64::MAX, 10).expect("due"),
            vec![(10, b"b".to_vec())]
        );
    }

    #[test]
    fn writes_count_what_they_add_to_the_bytes_held() {
        let mut view = PartitionState::new(Box::new(base()));
        assert_eq!(view.held_bytes().expect("held"), 10 * 3 + 6);
        assert_eq!(
            view.write(vec![b'k', 0], Some(vec![1, 2, 3]))
                .expect("write"),
            38
        );
        view.accept_current();
        assert_eq!(
            view.write(b"new".to_vec(), Some(vec![0; 4]))
                .expect("write"),
            45
        );
        view.discard_current();
        assert_eq!(
            view.held_bytes().expect("held"),
            38,
            "a discarded write adds nothing"
        );
        assert_eq!(view.write(b"z".to_vec(), None).expect("delete"), 32);
        assert_eq!(view.write(b"gone".to_vec(), None).expect("delete"), 32);
    }
}
