//! Committed values of one partition already read, shared by every batch of the runner
//! that owns the partition, so a hot key is read from the store once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;

use super::CommittedState;

/// Values of one partition's committed state already read, shared by every batch of the
/// runner that owns the partition. Only that runner writes the partition's state, so once
/// its commits are applied here the cache stays exact.
#[derive(Clone, Default)]
pub struct StateCache {
    entries: Arc<Mutex<CacheMap>>,
}

/// Keys to their committed value, or to `None` when known to be absent.
type CacheMap = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// Entries a partition's cache holds before it starts over.
const CACHE_ENTRIES: usize = 250_000;

impl StateCache {
    fn lock(&self) -> MutexGuard<'_, CacheMap> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies committed writes.
    pub fn apply(&self, writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        let mut entries = self.lock();
        if entries.len() + writes.len() > CACHE_ENTRIES {
            entries.clear();
        }
        for (key, value) in writes {
            entries.insert(key.clone(), value.clone());
        }
    }

    /// Forgets everything, after a commit that may not have happened.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// `base` with reads of single keys served from this cache.
    pub fn over(&self, base: Box<dyn CommittedState>) -> Box<dyn CommittedState> {
        Box::new(CachedState {
            cache: self.clone(),
            base,
        })
    }
}

struct CachedState {
    cache: StateCache,
    base: Box<dyn CommittedState>,
}

impl CommittedState for CachedState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.cache.lock().get(key) {
            return Ok(value.clone());
        }
        let value = self.base.get(key)?;
        let mut entries = self.cache.lock();
        if entries.len() < CACHE_ENTRIES {
            entries.insert(key.to_vec(), value.clone());
        }
        Ok(value)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.base.scan(prefix, start_after, limit)
    }

    fn timer(&self, key: &[u8]) -> Result<Option<i64>> {
        self.base.timer(key)
    }

    fn held_bytes(&self) -> Result<u64> {
        self.base.held_bytes()
    }

    fn timers_after(
        &self,
        after: Option<(i64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        self.base.timers_after(after, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    fn committed(pairs: &[(&str, &str)]) -> Box<dyn CommittedState> {
        let mut state = MemoryState::default();
        for (k, v) in pairs {
            state
                .state
                .insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        Box::new(state)
    }

    #[test]
    fn committed_writes_are_served_from_the_cache_and_a_clear_reads_the_store_again() {
        let cache = StateCache::default();
        let view = cache.over(committed(&[("a", "1")]));
        assert_eq!(view.get(b"a").expect("get"), Some(b"1".to_vec()));
        assert_eq!(view.get(b"gone").expect("get"), None);
        let mut writes = BTreeMap::new();
        writes.insert(b"a".to_vec(), Some(b"2".to_vec()));
        writes.insert(b"new".to_vec(), Some(b"3".to_vec()));
        cache.apply(&writes);
        // The store behind is stale on purpose: what a commit wrote comes from the cache.
        let view = cache.over(committed(&[("a", "1")]));
        assert_eq!(view.get(b"a").expect("get"), Some(b"2".to_vec()));
        assert_eq!(view.get(b"new").expect("get"), Some(b"3".to_vec()));
        cache.clear();
        let view = cache.over(committed(&[("a", "1")]));
        assert_eq!(view.get(b"a").expect("get"), Some(b"1".to_vec()));
    }
}
