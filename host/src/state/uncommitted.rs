//! A run's effects that wait for their commit, over the committed state: what the next
//! run of the same partition reads while that commit is under way.

use std::sync::Arc;

use anyhow::Result;

use super::CommittedState;
use super::overlay::merge_scan;
use crate::model::effects::Effects;

/// Committed state with a run's accepted effects over it.
pub struct Uncommitted {
    base: Box<dyn CommittedState>,
    effects: Arc<Effects>,
    /// What the effects add to the bytes held.
    growth: i64,
}

impl Uncommitted {
    /// `effects`, which add `growth` bytes, over `base`, which must not hold them yet.
    pub fn new(base: Box<dyn CommittedState>, effects: Arc<Effects>, growth: i64) -> Self {
        Uncommitted {
            base,
            effects,
            growth,
        }
    }
}

impl CommittedState for Uncommitted {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.effects.state.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        match self.effects.state.get(key) {
            Some(value) => Ok(value.as_ref().map(Vec::len)),
            None => self.base.value_len(key),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        merge_scan(
            self.base.as_ref(),
            &[&self.effects.state],
            prefix,
            start_after,
            limit,
        )
    }

    fn timer(&self, key: &[u8]) -> Result<Option<i64>> {
        match self.effects.timers.get(key) {
            Some(at) => Ok(*at),
            None => self.base.timer(key),
        }
    }

    fn held_bytes(&self) -> Result<u64> {
        Ok((self.base.held_bytes()? as i64 + self.growth).max(0) as u64)
    }

    fn timers_after(
        &self,
        after: Option<(i64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let later = |at: i64, key: &[u8]| after.is_none_or(|bound| (at, key) > bound);
        let mut found: Vec<(i64, Vec<u8>)> = self
            .effects
            .timers
            .iter()
            .filter_map(|(key, at)| at.map(|at| (at, key)))
            .filter(|(at, key)| later(*at, key))
            .map(|(at, key)| (at, key.clone()))
            .collect();
        // Committed timers whose keys the effects do not change, until `limit` of them
        // are known: nothing committed after those can be among the first `limit`.
        let mut committed = 0;
        let mut cursor: Option<(i64, Vec<u8>)> = after.map(|(at, key)| (at, key.to_vec()));
        loop {
            let page = self.base.timers_after(
                cursor.as_ref().map(|(at, key)| (*at, key.as_slice())),
                limit,
            )?;
            let full = page.len() == limit;
            cursor = page.last().cloned();
            for (at, key) in page {
                if !self.effects.timers.contains_key(&key) {
                    committed += 1;
                    found.push((at, key));
                }
            }
            if !full || committed >= limit {
                break;
            }
        }
        found.sort();
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    fn base() -> Box<dyn CommittedState> {
        let mut memory = MemoryState::default();
        for key in ["a", "b", "c"] {
            memory
                .state
                .insert(key.as_bytes().to_vec(), format!("old-{key}").into_bytes());
        }
        for (at, key) in [(10, "t1"), (20, "t2"), (30, "t3")] {
            memory.timers.insert(key.as_bytes().to_vec(), at);
        }
        Box::new(memory)
    }

    fn effects() -> Arc<Effects> {
        let mut effects = Effects::default();
        effects.state.insert(b"b".to_vec(), None);
        effects.state.insert(b"c".to_vec(), Some(b"new-c".to_vec()));
        effects.state.insert(b"d".to_vec(), Some(b"new-d".to_vec()));
        effects.timers.insert(b"t1".to_vec(), None);
        effects.timers.insert(b"t3".to_vec(), Some(5));
        effects.timers.insert(b"t4".to_vec(), Some(25));
        Arc::new(effects)
    }

    #[test]
    fn reads_see_the_effects_over_what_is_committed() {
        let state = Uncommitted::new(base(), effects(), 7);
        assert_eq!(state.get(b"a").expect("a"), Some(b"old-a".to_vec()));
        assert_eq!(state.get(b"b").expect("b"), None);
        assert_eq!(state.get(b"c").expect("c"), Some(b"new-c".to_vec()));
        let keys: Vec<Vec<u8>> = state
            .scan(b"", None, 10)
            .expect("scan")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(state.timer(b"t1").expect("t1"), None);
        assert_eq!(state.timer(b"t2").expect("t2"), Some(20));
        assert_eq!(state.timer(b"t3").expect("t3"), Some(5));
    }

    #[test]
    fn timers_come_in_time_order_from_both_layers_page_by_page() {
        let state = Uncommitted::new(base(), effects(), 0);
        let all = state.timers_after(None, 10).expect("timers");
        assert_eq!(
            all,
            [
                (5, b"t3".to_vec()),
                (20, b"t2".to_vec()),
                (25, b"t4".to_vec())
            ]
        );
        let first = state.timers_after(None, 2).expect("page");
        assert_eq!(first, all[..2]);
        let rest = state
            .timers_after(Some((20, b"t2".as_slice())), 2)
            .expect("page");
        assert_eq!(rest, all[2..]);
    }
}
