//! What the benches share: committed state in memory, and applying a batch's writes to it.

use std::sync::{Arc, RwLock};

use std::collections::BTreeMap;

use streamfn_host::state::{CommittedState, MemoryState};

/// Committed state in memory, shared between batches the way a store is.
#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<MemoryState>>);

impl CommittedState for Shared {
    fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .scan(prefix, after, limit)
    }
    fn timer(&self, key: &[u8]) -> anyhow::Result<Option<i64>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).timer(key)
    }
    fn timers_after(
        &self,
        after: Option<(i64, &[u8])>,
        limit: usize,
    ) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .timers_after(after, limit)
    }
}

impl Shared {
    /// Applies a batch's accepted writes, as a commit would, for the next batch to see.
    pub fn apply(&self, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes {
            match v {
                Some(v) => map.state.insert(k, v),
                None => map.state.remove(&k),
            };
        }
    }
}
