//! A function's state on Kafka: a compacted changelog topic per function, partitioned like
//! its inputs, whose records are the state writes, timer changes and stream time of each
//! commit, and the replays done; and the restore that reads it back into the replica's
//! local store, from the local checkpoint when there is one.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};

use super::cluster::KafkaCluster;
use crate::log::embedded::EmbeddedLog;
use crate::model::effects::{Commit, Effects};
use crate::model::record::Record;

pub use crate::model::deployment::changelog_topic;

/// Changelog keys start with the kind of entry they hold.
const STATE_ENTRY: u8 = 0;
const TIMER_ENTRY: u8 = 1;
const STREAM_TIME_ENTRY: u8 = 2;
const REPLAY_ENTRY: u8 = 3;

/// Changes gathered before they are written to the local store at once.
const RESTORE_CHUNK: usize = 10_000;

/// Longest a restore waits for a record of the changelog before it gives up.
const RESTORE_STALL: Duration = Duration::from_secs(60);

/// A changelog record of `kind` under `key`, stamped with the stream time it leaves.
fn entry_record(kind: u8, key: &[u8], value: Option<Vec<u8>>, stream_time_ms: i64) -> Record {
    Record {
        timestamp_ms: stream_time_ms.max(0),
        key: Some([&[kind][..], key].concat()),
        value,
        headers: Vec::new(),
    }
}

/// The changelog records of `commit`: its state writes, timer changes and stream time.
pub fn entries(commit: &Commit<'_>) -> Vec<Record> {
    let entry = |kind: u8, key: &[u8], value: Option<Vec<u8>>| {
        entry_record(kind, key, value, commit.stream_time_ms)
    };
    let effects = commit.effects;
    let mut records = Vec::with_capacity(effects.state.len() + effects.timers.len() + 1);
    for (key, value) in &effects.state {
        records.push(entry(STATE_ENTRY, key, value.clone()));
    }
    for (key, at) in &effects.timers {
        records.push(entry(
            TIMER_ENTRY,
            key,
            at.map(|at| at.to_be_bytes().to_vec()),
        ));
    }
    let stream_time = commit.stream_time_ms.to_be_bytes().to_vec();
    records.push(entry(STREAM_TIME_ENTRY, &[], Some(stream_time)));
    records
}

/// The changelog records of a replay made with `version`: a tombstone for each of `keys`
/// and `timers` (those of the state it drops), the replay as done, and the stream time it
/// leaves.
pub fn replay_entries(
    keys: &[Vec<u8>],
    timers: &[Vec<u8>],
    version: u32,
    stream_time_ms: i64,
) -> Vec<Record> {
    let entry = |kind: u8, key: &[u8], value: Option<Vec<u8>>| {
        entry_record(kind, key, value, stream_time_ms)
    };
    let mut records: Vec<Record> = keys
        .iter()
        .map(|key| entry(STATE_ENTRY, key, None))
        .chain(timers.iter().map(|key| entry(TIMER_ENTRY, key, None)))
        .collect();
    records.push(entry(
        REPLAY_ENTRY,
        &[],
        Some(version.to_be_bytes().to_vec()),
    ));
    records.push(entry(
        STREAM_TIME_ENTRY,
        &[],
        Some(stream_time_ms.to_be_bytes().to_vec()),
    ));
    records
}

/// What a restore found besides state: the stream time, and the last replay done.
#[derive(Debug, Default)]
struct Found {
    stream_time: Option<i64>,
    replayed: Option<u32>,
}

/// Changelog records of one partition read but not yet written to the local store.
#[derive(Debug, Default)]
pub(super) struct Pending {
    changes: Effects,
    found: Found,
    /// Records read, in all.
    pub(super) records: u64,
    /// Bytes of their keys and values, in all.
    pub(super) bytes: u64,
}

impl Pending {
    /// Takes in one changelog record.
    pub(super) fn add(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.records += 1;
        self.bytes += (key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64;
        apply(key, value, &mut self.changes, &mut self.found);
    }

    /// Whether enough is pending to be written at once.
    pub(super) fn full(&self) -> bool {
        self.changes.state.len() + self.changes.timers.len() >= RESTORE_CHUNK
    }
}

/// Applies one changelog record (its key and value) to changes pending for the store.
fn apply(key: Option<&[u8]>, value: Option<&[u8]>, pending: &mut Effects, found: &mut Found) {
    let Some((kind, key)) = key.and_then(|k| k.split_first()) else {
        return;
    };
    let value = value.map(<[u8]>::to_vec);
    let time = |v: Option<Vec<u8>>| {
        v.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes)
    };
    match *kind {
        STATE_ENTRY => {
            pending.state.insert(key.to_vec(), value);
        }
        TIMER_ENTRY => {
            pending.timers.insert(key.to_vec(), time(value));
        }
        STREAM_TIME_ENTRY => {
            if let Some(at) = time(value) {
                found.stream_time = Some(at);
            }
        }
        REPLAY_ENTRY => {
            if let Some(version) = value
                .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
                .map(u32::from_be_bytes)
            {
                found.replayed = Some(version);
            }
        }
        _ => {}
    }
}

/// One function's changelog, and the local store it restores into.
pub struct Changelog<'a> {
    /// The cluster.
    pub cluster: &'a KafkaCluster,
    /// The replica's local store.
    pub local: &'a EmbeddedLog,
    /// The function.
    pub function: &'a str,
}

impl Changelog<'_> {
    fn topic(&self) -> String {
        changelog_topic(self.function)
    }

    /// Brings the local copy of `partition`'s state up to the end of its changelog,
    /// telling `progress` how far it has come after each chunk; returns how many records
    /// and bytes it read, or `None` when the copy was current.
    pub fn restore(
        &self,
        partition: u32,
        progress: &mut dyn FnMut(&Pending, u64),
    ) -> Result<Option<(u64, u64)>> {
        let (low, high) = self.cluster.watermarks(&self.topic(), partition)?;
        let from = self.start(partition, low, high)?;
        if from >= high {
            return Ok(None);
        }
        tracing::info!(function = %self.function, partition, records = high - from, "restoring state from the changelog");
        let reader = self.reader(partition, from)?;
        let mut pending = Pending::default();
        let mut reached = from;
        let mut heard = Instant::now();
        loop {
            match reader.poll(Duration::from_millis(500)) {
                None if heard.elapsed() > RESTORE_STALL => bail!(
                    "restoring {}/{partition}: nothing came for {RESTORE_STALL:?} at offset {reached} of {high}",
                    self.topic()
                ),
                None => {}
                // The end of what is committed. A transaction left open by a replica
                // that died mid-commit lies beyond it and will be aborted: its writes
                // never count, and the group refuses its offsets, so there is no need to
                // wait for it.
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(err)) => bail!("reading the changelog: {err}"),
                Some(Ok(message)) => {
                    heard = Instant::now();
                    pending.add(message.key(), message.payload());
                    reached = message.offset() as u64 + 1;
                    if pending.full() {
                        self.store(partition, &mut pending, reached)?;
                        progress(&pending, high - from);
                    }
                }
            }
        }
        // Past the transaction markers too, where the reader stands.
        let reached = position(&reader, &self.topic(), partition).unwrap_or(reached);
        self.store(partition, &mut pending, reached)?;
        progress(&pending, high - from);
        Ok(Some((pending.records, pending.bytes)))
    }

    /// Where the local copy of `partition` reads its changelog (offsets `low..high`)
    /// from: its checkpoint, or the start, with the copy dropped, when the checkpoint is
    /// gone or out of range.
    pub(super) fn start(&self, partition: u32, low: u64, high: u64) -> Result<u64> {
        Ok(match self.local.checkpoint(self.function, partition)? {
            Some(checkpoint) if checkpoint >= low && checkpoint <= high => checkpoint,
            _ => {
                self.local.clear_state(self.function, partition)?;
                low
            }
        })
    }

    /// Records that the local copy of `partition` is current, so that the next
    /// assignment here restores less.
    pub fn checkpoint(&self, partition: u32) {
        if let Ok((_, high)) = self.cluster.watermarks(&self.topic(), partition) {
            let _ = self.local.put_checkpoint(self.function, partition, high);
        }
    }

    /// A reader of `partition`'s changelog from `from`, with read_committed.
    fn reader(&self, partition: u32, from: u64) -> Result<BaseConsumer<QuietEnd>> {
        let reader = changelog_reader(self.cluster, self.function)?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&self.topic(), partition as i32, Offset::Offset(from as i64))?;
        reader.assign(&list)?;
        Ok(reader)
    }

    /// Writes `pending` into the local copy of `partition`'s state, which then holds the
    /// changelog up to `reached`.
    pub(super) fn store(&self, partition: u32, pending: &mut Pending, reached: u64) -> Result<()> {
        let stream_time_ms = match pending.found.stream_time {
            Some(t) => t,
            None => self.local.stream_time(self.function, partition)?,
        };
        self.local.cache_commit(&[Commit {
            group: self.function,
            partition,
            offsets: Vec::new(),
            stream_time_ms,
            effects: &pending.changes,
            state_growth: None,
        }])?;
        if let Some(version) = pending.found.replayed {
            self.local
                .replay_partition(self.function, partition, &[], false, version, false)?;
        }
        self.local
            .put_checkpoint(self.function, partition, reached)?;
        pending.changes = Effects::default();
        pending.found = Found::default();
        Ok(())
    }
}

/// A consumer of `function`'s changelog, read_committed, that reports reaching the end
/// of a partition; assigned, not subscribed, under the group `FUNCTION-restore` (for
/// ACLs: it commits nothing).
pub(super) fn changelog_reader(
    cluster: &KafkaCluster,
    function: &str,
) -> Result<BaseConsumer<QuietEnd>> {
    cluster
        .options
        .config(&[
            ("enable.auto.commit", "false"),
            ("group.id", &format!("{function}-restore")),
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "true"),
            // Reaching the end is the point: don't let the broker hold the last fetch.
            ("fetch.wait.max.ms", "10"),
            // A restore writes more slowly than librdkafka fetches, so the queue of
            // fetched records fills; librdkafka's default would then leave the partition
            // alone for a second, longer than the restore takes to catch up.
            ("fetch.queue.backoff.ms", "10"),
        ])
        .create_with_context(QuietEnd)
        .context("configuring the changelog reader")
}

/// Where `reader` stands in `topic`'s `partition`, once it has read something.
pub(super) fn position<C: ConsumerContext>(
    reader: &BaseConsumer<C>,
    topic: &str,
    partition: u32,
) -> Option<u64> {
    reader
        .position()
        .ok()?
        .find_partition(topic, partition as i32)
        .and_then(|e| e.offset().to_raw())
        .filter(|o| *o >= 0)
        .map(|o| o as u64)
}

/// The changelog reader's context: reaching the end of the partition is what it waits
/// for, not an error worth logging.
pub(super) struct QuietEnd;

impl ClientContext for QuietEnd {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let end = matches!(
            error,
            rdkafka::error::KafkaError::PartitionEOF(_)
                | rdkafka::error::KafkaError::Global(
                    rdkafka::types::RDKafkaErrorCode::PartitionEOF
                )
        );
        if !end {
            tracing::warn!("changelog reader: {error}: {reason}");
        }
    }
}

impl ConsumerContext for QuietEnd {}

#[cfg(test)]
mod tests {
    use super::*;

    /// What restoring `records` on top of `pending` finds.
    fn restore(records: &[Record], pending: &mut Effects) -> Found {
        let mut found = Found::default();
        for record in records {
            apply(
                record.key.as_deref(),
                record.value.as_deref(),
                pending,
                &mut found,
            );
        }
        found
    }

    #[test]
    fn a_commits_entries_replay_into_the_same_changes() {
        let mut effects = Effects::default();
        effects
            .state
            .insert(b"acct-1".to_vec(), Some(b"42".to_vec()));
        effects.state.insert(b"acct-2".to_vec(), None);
        effects.timers.insert(b"window".to_vec(), Some(300_000));
        effects.timers.insert(b"old".to_vec(), None);
        let commit = Commit {
            group: "f",
            partition: 3,
            offsets: Vec::new(),
            stream_time_ms: 299_000,
            effects: &effects,
            state_growth: None,
        };
        let records = entries(&commit);
        assert_eq!(records.len(), 5);
        assert!(records.iter().all(|r| r.timestamp_ms == 299_000));
        let mut pending = Effects::default();
        let found = restore(&records, &mut pending);
        assert_eq!(pending.state, effects.state);
        assert_eq!(pending.timers, effects.timers);
        assert_eq!(found.stream_time, Some(299_000));
    }

    #[test]
    fn a_replay_drops_the_keys_and_timers_it_names_and_is_recorded() {
        let keys = [b"a".to_vec(), b"b".to_vec()];
        let timers = [b"w".to_vec()];
        let records = replay_entries(&keys, &timers, 7, i64::MIN);
        let mut pending = Effects::default();
        pending.state.insert(b"a".to_vec(), Some(b"1".to_vec()));
        let found = restore(&records, &mut pending);
        assert_eq!(pending.state.get(b"a".as_slice()), Some(&None));
        assert_eq!(pending.state.get(b"b".as_slice()), Some(&None));
        assert_eq!(pending.timers.get(b"w".as_slice()), Some(&None));
        assert_eq!(found.replayed, Some(7));
        assert_eq!(found.stream_time, Some(i64::MIN));
    }

    #[test]
    fn records_of_no_known_kind_change_nothing() {
        let mut pending = Effects::default();
        let mut found = Found::default();
        apply(Some(b"\x09junk"), Some(b"v"), &mut pending, &mut found);
        apply(None, Some(b"v"), &mut pending, &mut found);
        apply(
            Some(&[STREAM_TIME_ENTRY]),
            Some(b"short"),
            &mut pending,
            &mut found,
        );
        apply(Some(&[REPLAY_ENTRY]), Some(b"x"), &mut pending, &mut found);
        assert!(pending.is_empty());
        assert_eq!((found.stream_time, found.replayed), (None, None));
    }
}
