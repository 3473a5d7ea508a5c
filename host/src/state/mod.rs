//! The state and timers of one function partition: what is committed (behind
//! [`CommittedState`], wherever it lives), the batch's pending effects on top of it
//! ([`overlay`]), a previous run's effects while their commit is under way
//! ([`uncommitted`]), a cache of committed values for the partition's owner ([`cache`]) and
//! committed state in memory ([`memory`]). Not where committed state is stored: the logs
//! implement [`CommittedState`] over their stores.

pub mod cache;
pub mod memory;
pub mod overlay;
pub mod uncommitted;

use anyhow::Result;

pub use self::memory::MemoryState;
pub use self::overlay::PartitionState;
pub use self::uncommitted::Uncommitted;

/// Most entries one `scan` returns, whatever the guest asks for.
pub const MAX_SCAN: usize = 1000;

/// Committed state and timers of one function partition, read as of the batch's start.
pub trait CommittedState: Send {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The length of the value under `key`: what a write replaces, counted without a
    /// copy of it where the store can.
    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.get(key)?.map(|value| value.len()))
    }
    /// Up to `limit` entries with keys starting with `prefix`, after `start_after`, in
    /// key order.
    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The time of the timer under `key`.
    fn timer(&self, key: &[u8]) -> Result<Option<i64>>;
    /// Bytes of the keys and values held.
    fn held_bytes(&self) -> Result<u64>;
    /// Up to `limit` timers in (time, key) order, strictly after `after`.
    fn timers_after(
        &self,
        after: Option<(i64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>>;
}

/// State entries, key and value, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads one page of a prefix scan from `entries`, which must run in key order from
/// [`scan_start`]: the entries under `prefix` after `start_after`, at most `limit`. Every
/// store's scan is this over its own ordered range.
pub fn scan_page<E>(
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
    prefix: &[u8],
    start_after: Option<&[u8]>,
    limit: usize,
) -> Result<Entries, E> {
    let mut page = Vec::new();
    let mut entries = entries;
    // An entry is read only while the page has room: reading one can cost a check.
    while page.len() < limit {
        let Some(entry) = entries.next() else { break };
        let (key, value) = entry?;
        if !key.starts_with(prefix) {
            break;
        }
        if start_after.is_some_and(|after| key.as_slice() <= after) {
            continue;
        }
        page.push((key, value));
    }
    Ok(page)
}

/// Where a scan under `prefix` after `start_after` begins reading a key-ordered store.
pub fn scan_start<'a>(prefix: &'a [u8], start_after: Option<&'a [u8]>) -> &'a [u8] {
    start_after
        .filter(|after| *after >= prefix)
        .unwrap_or(prefix)
}

/// Every key of `state`, in key order.
pub fn all_keys(state: &dyn CommittedState) -> Result<Vec<Vec<u8>>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let page = state.scan(b"", keys.last().map(Vec::as_slice), 1024)?;
        let full = page.len() == 1024;
        keys.extend(page.into_iter().map(|(key, _)| key));
        if !full {
            return Ok(keys);
        }
    }
}

/// Every timer of `state`, in firing order.
pub fn all_timers(state: &dyn CommittedState) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut timers: Vec<(i64, Vec<u8>)> = Vec::new();
    loop {
        let after = timers.last().map(|(at, key)| (*at, key.as_slice()));
        let page = state.timers_after(after, 1024)?;
        let full = page.len() == 1024;
        timers.extend(page);
        if !full {
            return Ok(timers);
        }
    }
}
