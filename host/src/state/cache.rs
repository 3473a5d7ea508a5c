//! Committed values of one partition already read, shared by every batch of the runner
//! that owns the partition, so a hot key is read from the store once; bounded in bytes,
//! with what is not read again aging out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;

use super::CommittedState;

/// Values of one partition's committed state already read, shared by every batch of the
/// runner that owns the partition. Only that runner writes the partition's state, so once
/// its commits are applied here the cache stays exact.
#[derive(Clone)]
pub struct StateCache {
    entries: Arc<Mutex<Generations>>,
    /// The bytes it holds at most; 0 for no cache.
    bytes: usize,
}

/// Bytes of keys and values one partition's cache holds at most by default, whatever
/// their sizes (`fnctl serve --state-cache-mb`).
pub const CACHE_BYTES: usize = 256 << 20;

/// What an entry costs besides its key and value: the map's slot and two allocations.
const ENTRY_OVERHEAD: usize = 64;

/// Keys to their committed value, or to `None` when known to be absent, in two
/// generations: entries go into the young one, and when it holds half the budget it
/// becomes the old one and the old one is dropped. An old entry read again moves back
/// to the young one, so what is read often stays, and what is not ages out, at the cost
/// of a map lookup or two, with no list to keep in order.
struct Generations {
    young: HashMap<Vec<u8>, Option<Vec<u8>>>,
    old: HashMap<Vec<u8>, Option<Vec<u8>>>,
    young_bytes: usize,
    budget: usize,
}

fn entry_bytes(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl Generations {
    fn with_budget(budget: usize) -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            budget,
        }
    }

    fn get(&mut self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(value) = self.young.get(key) {
            return Some(value.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        let found = value.clone();
        self.put(key, value);
        Some(found)
    }

    /// The length of the value under `key`, if the key is held, leaving it where it is.
    fn value_len(&self, key: &[u8]) -> Option<Option<usize>> {
        let value = self.young.get(key).or_else(|| self.old.get(key))?;
        Some(value.as_ref().map(Vec::len))
    }

    /// Holds `value` under `key`; the old generation forgets the key, so a lookup never
    /// finds a value a later write replaced.
    fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let bytes = entry_bytes(&key, &value);
        if self.young_bytes + bytes > self.budget / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.old.remove(&key);
        self.young_bytes += bytes;
        let key_bytes = key.len();
        if let Some(replaced) = self.young.insert(key, value) {
            self.young_bytes -= key_bytes + entry_bytes(&[], &replaced);
        }
    }

    /// Bytes held, roughly: keys, values and what each entry costs besides.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.young
            .iter()
            .chain(&self.old)
            .map(|(k, v)| entry_bytes(k, v))
            .sum()
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }
}

impl StateCache {
    /// A cache holding at most `bytes` of keys and values; none with 0.
    pub fn new(bytes: usize) -> Self {
        StateCache {
            entries: Arc::new(Mutex::new(Generations::with_budget(bytes))),
            bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies committed writes.
    pub fn apply(&self, writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        if self.bytes == 0 {
            return;
        }
        let mut entries = self.lock();
        for (key, value) in writes {
            entries.put(key.clone(), value.clone());
        }
    }

    /// Forgets everything, after a commit that may not have happened.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// `base` with reads of single keys served from this cache.
    pub fn over(&self, base: Box<dyn CommittedState>) -> Box<dyn CommittedState> {
        if self.bytes == 0 {
            return base;
        }
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
            return Ok(value);
        }
        let value = self.base.get(key)?;
        self.cache.lock().put(key.to_vec(), value.clone());
        Ok(value)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        match self.cache.lock().value_len(key) {
            Some(len) => Ok(len),
            None => self.base.value_len(key),
        }
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
        let cache = StateCache::new(CACHE_BYTES);
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
        // The length of a value a write replaces comes from the same place as the value.
        assert_eq!(view.value_len(b"new").expect("len"), Some(1));
        cache.clear();
        let view = cache.over(committed(&[("a", "1"), ("b", "four")]));
        assert_eq!(view.get(b"a").expect("get"), Some(b"1".to_vec()));
        assert_eq!(
            view.value_len(b"b").expect("len"),
            Some(4),
            "from the store"
        );
        assert_eq!(view.value_len(b"none").expect("len"), None);
    }

    #[test]
    fn a_key_written_again_and_again_is_counted_once() {
        let mut cache = Generations::with_budget(1 << 20);
        for i in 0..100_000u32 {
            cache.put(b"hot".to_vec(), Some(i.to_be_bytes().to_vec()));
        }
        assert_eq!(cache.young_bytes, cache.bytes());
        assert!(cache.old.is_empty(), "one entry never fills a generation");
    }

    #[test]
    fn the_cache_holds_its_budget_whatever_the_sizes_of_values() {
        let budget = 1 << 20;
        let mut cache = Generations::with_budget(budget);
        for i in 0..10_000u32 {
            cache.put(i.to_be_bytes().to_vec(), Some(vec![7; 10_000]));
            assert!(cache.bytes() <= budget + 10_100, "{} bytes", cache.bytes());
        }
        let last = 9_999u32.to_be_bytes();
        assert_eq!(cache.get(&last), Some(Some(vec![7; 10_000])));
        assert_eq!(cache.get(&0u32.to_be_bytes()), None, "aged out");
    }

    #[test]
    fn a_key_read_again_stays_and_a_later_write_is_never_hidden_by_an_older_one() {
        let mut cache = Generations::with_budget(64 * (ENTRY_OVERHEAD + 9));
        cache.put(b"hot".to_vec(), Some(b"v1".to_vec()));
        cache.put(b"gone".to_vec(), None);
        for i in 0..200u32 {
            cache.put(format!("k{i:04}").into_bytes(), Some(b"x".to_vec()));
            assert_eq!(cache.get(b"hot"), Some(Some(b"v1".to_vec())), "read often");
        }
        assert_eq!(cache.get(b"gone"), None, "not read again: aged out");
        // A key written again while its older value sits in the old generation.
        let mut cache = Generations::with_budget(2 * 4 * (ENTRY_OVERHEAD + 4));
        for key in ["k1", "a1", "b1", "c1", "d1"] {
            cache.put(key.as_bytes().to_vec(), Some(b"v1".to_vec()));
        }
        assert!(
            cache.old.contains_key(b"k1".as_slice()),
            "k1 aged into the old one"
        );
        cache.put(b"k1".to_vec(), Some(b"v2".to_vec()));
        assert!(!cache.old.contains_key(b"k1".as_slice()));
        assert_eq!(cache.get(b"k1"), Some(Some(b"v2".to_vec())));
        cache.put(b"hot".to_vec(), Some(b"v2".to_vec()));
        assert_eq!(cache.get(b"hot"), Some(Some(b"v2".to_vec())));
    }
}
