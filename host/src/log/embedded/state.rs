//! Committed state and timers of function partitions in the embedded store: a snapshot
//! of one partition taken when its batch starts (its state table read through its
//! journal), its size, dropping it, and a replay that
//! moves the partition's offsets back (and maybe drops its state) in one transaction.

use anyhow::Result;
use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use anyhow::Context as _;

use super::frame::{self, damaged};
use super::journal::{self, Head, Journal, Journals, Written};
use super::store::{EmbeddedLog, catch_damage};
use super::tables::{
    CHECKPOINTS, JOURNAL, JOURNAL_FOLDS, JOURNAL_HEADS, OFFSETS, REPLAYS, STATE, STATE_BYTES,
    STREAM_TIME, TIMER_KEYS, TIMERS, TopicMeta,
};
use crate::state::{CommittedState, scan_page, scan_start};

/// A snapshot of one function partition's state.
pub struct SnapshotState {
    function: String,
    partition: u32,
    state: ReadOnlyTable<(&'static str, u32, &'static [u8]), &'static [u8]>,
    timers: ReadOnlyTable<(&'static str, u32, i64, &'static [u8]), ()>,
    timer_keys: ReadOnlyTable<(&'static str, u32, &'static [u8]), i64>,
    sizes: ReadOnlyTable<(&'static str, u32), u64>,
    /// Changes not yet folded into `state`, read first.
    journal: Journal,
}

impl SnapshotState {
    /// The state of `function`'s `partition` as of `txn`.
    pub fn new(
        txn: &ReadTransaction,
        journals: &Journals,
        function: &str,
        partition: u32,
    ) -> Result<Self> {
        Ok(SnapshotState {
            journal: read_journal(txn, journals, function, partition)?,
            function: function.to_owned(),
            partition,
            state: txn.open_table(STATE)?,
            timers: txn.open_table(TIMERS)?,
            timer_keys: txn.open_table(TIMER_KEYS)?,
            sizes: txn.open_table(STATE_BYTES)?,
        })
    }
}

impl SnapshotState {
    /// The value stored under `key`, or an error naming it when it is damaged.
    fn open(&self, key: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
        frame::open_state(&self.function, self.partition, key, stored)
            .map(<[u8]>::to_vec)
            .with_context(|| {
                damaged(&format!(
                    "the state of function {} partition {} under key {:?}",
                    self.function,
                    self.partition,
                    String::from_utf8_lossy(key)
                ))
            })
    }
}

impl CommittedState for SnapshotState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(latest) = self.journal.get(key) {
            return Ok(latest.map(<[u8]>::to_vec));
        }
        catch_damage("reading state", || {
            let stored = self
                .state
                .get((self.function.as_str(), self.partition, key))?;
            stored.map(|v| self.open(key, v.value())).transpose()
        })
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let from = scan_start(prefix, start_after);
        catch_damage("scanning state", || {
            let stored = self
                .state
                .range((self.function.as_str(), self.partition, from)..)?
                .map_while(|item| match item {
                    Err(err) => Some(Err(anyhow::Error::from(err))),
                    Ok((key, value)) => {
                        let (function, partition, key) = key.value();
                        (function == self.function
                            && partition == self.partition
                            && key.starts_with(prefix))
                        .then(|| {
                            let value = self.open(key, value.value())?;
                            Ok((key.to_vec(), value))
                        })
                    }
                });
            let entries = journal::overlay(self.journal.range_from(from), stored);
            scan_page(entries, prefix, start_after, limit)
        })
    }

    fn timer(&self, key: &[u8]) -> Result<Option<i64>> {
        let at = self
            .timer_keys
            .get((self.function.as_str(), self.partition, key))?;
        Ok(at.map(|a| a.value()))
    }

    fn held_bytes(&self) -> Result<u64> {
        catch_damage("reading the size of state", || {
            Ok(self
                .sizes
                .get((self.function.as_str(), self.partition))?
                .map_or(0, |v| v.value()))
        })
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

impl EmbeddedLog {
    /// A snapshot of `function`'s committed state on `partition`.
    pub fn partition_state(
        &self,
        function: &str,
        partition: u32,
    ) -> Result<Box<dyn CommittedState>> {
        self.guard("reading state", |db| {
            let txn = db.begin_read()?;
            let state: Box<dyn CommittedState> = Box::new(SnapshotState::new(
                &txn,
                &self.journals,
                function,
                partition,
            )?);
            Ok(state)
        })
    }

    /// Number of state entries `function` holds on `partition`.
    pub fn state_len(&self, function: &str, partition: u32) -> Result<u64> {
        self.guard("counting state entries", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(STATE)?;
            let mut n: u64 = 0;
            for item in table.range((function, partition, &[][..])..)? {
                let (key, _) = item?;
                let (f, p, _) = key.value();
                if f != function || p != partition {
                    break;
                }
                n += 1;
            }
            let journal = read_journal(&txn, &self.journals, function, partition)?;
            for (key, latest) in journal.range_from(b"") {
                match (latest, table.get((function, partition, key))?.is_some()) {
                    (Some(_), false) => n += 1,
                    (None, true) => n -= 1,
                    _ => {}
                }
            }
            Ok(n)
        })
    }

    /// Bytes of keys and values of the state `function` holds on `partition`.
    pub fn state_bytes(&self, function: &str, partition: u32) -> Result<u64> {
        self.guard("reading the size of state", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(STATE_BYTES)?;
            Ok(table.get((function, partition))?.map_or(0, |v| v.value()))
        })
    }

    /// Drops `function`'s local state, timers, stream time and checkpoint of `partition`.
    pub fn clear_state(&self, function: &str, partition: u32) -> Result<()> {
        self.guard("dropping state", |db| {
            let txn = db.begin_write()?;
            let first = clear_partition(&txn, function, partition)?;
            txn.open_table(CHECKPOINTS)?.remove((function, partition))?;
            txn.commit()?;
            self.journals.keep_from(function, partition, first);
            Ok(())
        })
    }

    /// The version whose replay `function`'s `partition` carried out last, if any.
    pub fn replayed(&self, function: &str, partition: u32) -> Result<Option<u32>> {
        self.guard("reading replays", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(REPLAYS)?;
            Ok(table.get((function, partition))?.map(|v| v.value()))
        })
    }

    /// Carries out the replay of `version` on `function`'s `partition` in one
    /// transaction: the function's committed offsets of its inputs moved to `offsets`,
    /// its state, timers and stream time dropped when `reset`, and the replay recorded as
    /// done. `durable` syncs it to disk; a local copy of state kept elsewhere need not.
    pub fn replay_partition(
        &self,
        function: &str,
        partition: u32,
        offsets: &[(&TopicMeta, u64)],
        reset: bool,
        version: u32,
        durable: bool,
    ) -> Result<()> {
        self.guard("replaying a partition", |db| {
            let mut txn = db.begin_write()?;
            if !durable {
                txn.set_durability(redb::Durability::None)?;
            }
            let cleared = if reset {
                Some(clear_partition(&txn, function, partition)?)
            } else {
                None
            };
            {
                let mut committed = txn.open_table(OFFSETS)?;
                for (topic, next) in offsets {
                    committed.insert((function, topic.id, partition), *next)?;
                }
                txn.open_table(REPLAYS)?
                    .insert((function, partition), version)?;
            }
            txn.commit()?;
            if let Some(first) = cleared {
                self.journals.keep_from(function, partition, first);
            }
            Ok(())
        })
    }
}

/// The journal `txn` sees in front of `function`'s state on `partition`.
fn read_journal(
    txn: &ReadTransaction,
    journals: &Journals,
    function: &str,
    partition: u32,
) -> Result<Journal> {
    let head = txn
        .open_table(JOURNAL_HEADS)?
        .get((function, partition))?
        .map_or_else(Head::default, |v| Head::from_row(v.value()));
    journals.rows(
        &txn.open_table(JOURNAL)?,
        function,
        partition,
        head,
        &Written::new(),
    )
}

/// Drops `function`'s state, journal, timers, stream time and their size of `partition`
/// in `txn`. Returns where the partition's journal starts now: the rows before it are
/// gone.
fn clear_partition(txn: &WriteTransaction, function: &str, partition: u32) -> Result<u64> {
    let mut heads = txn.open_table(JOURNAL_HEADS)?;
    let head = heads
        .get((function, partition))?
        .map_or_else(Head::default, |v| Head::from_row(v.value()));
    let mut rows = txn.open_table(JOURNAL)?;
    for seq in head.first..head.next {
        rows.remove((function, partition, seq))?;
    }
    txn.open_table(JOURNAL_FOLDS)?
        .remove((function, partition))?;
    // The sequence numbers go on: one is never used for two rows.
    heads.insert(
        (function, partition),
        Head {
            first: head.next,
            next: head.next,
            bytes: 0,
        }
        .row(),
    )?;
    let mut state = txn.open_table(STATE)?;
    let doomed: Vec<Vec<u8>> = state
        .range((function, partition, &[][..])..)?
        .map_while(|item| {
            let (key, _) = item.ok()?;
            let (f, p, k) = key.value();
            (f == function && p == partition).then(|| k.to_vec())
        })
        .collect();
    for key in doomed {
        state.remove((function, partition, key.as_slice()))?;
    }
    let mut timer_keys = txn.open_table(TIMER_KEYS)?;
    let mut timers = txn.open_table(TIMERS)?;
    let doomed: Vec<(Vec<u8>, i64)> = timer_keys
        .range((function, partition, &[][..])..)?
        .map_while(|item| {
            let (key, at) = item.ok()?;
            let (f, p, k) = key.value();
            (f == function && p == partition).then(|| (k.to_vec(), at.value()))
        })
        .collect();
    for (key, at) in doomed {
        timer_keys.remove((function, partition, key.as_slice()))?;
        timers.remove((function, partition, at, key.as_slice()))?;
    }
    txn.open_table(STREAM_TIME)?.remove((function, partition))?;
    txn.open_table(STATE_BYTES)?.remove((function, partition))?;
    Ok(head.next)
}
