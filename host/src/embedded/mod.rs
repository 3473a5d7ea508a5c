//! The embedded log: named topics of N partitions, durable appends, per-group committed
//! offsets, function state and timers, all in one transactional store file under the data
//! directory. It is a single-node log; it never grows cluster features.

mod commit;
mod retention;
mod state;
mod tables;

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

pub use self::retention::RetentionReport;
use self::tables::{
    ARTIFACTS, CHECKPOINTS, DEPLOYMENTS, LOG, OFFSETS, PARTITIONS, STATE, STREAM_TIME, TIMER_KEYS,
    TIMERS, TOPICS,
};
use crate::partitioner::partition_for;
use crate::record::Record;
use crate::state::CommittedState;

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "streamfn.redb";

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Largest record (key, value and headers) accepted, in bytes.
    pub max_record_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_record_bytes: 1 << 20,
        }
    }
}

/// A topic's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Internal id, used in keys.
    pub id: u32,
    /// Number of partitions.
    pub partitions: u32,
    /// Records older than this (by record timestamp) are deleted; `None` keeps them.
    pub retention_ms: Option<u64>,
    /// Each partition keeps at most about this many bytes; `None` means no bound.
    pub retention_bytes: Option<u64>,
}

/// A topic partition's extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionExtent {
    /// Offset of the oldest record kept.
    pub start: u64,
    /// Offset the next record gets.
    pub end: u64,
    /// Bytes held.
    pub bytes: u64,
}

/// Records fetched from a partition.
#[derive(Debug, Default)]
pub struct Fetched {
    /// (offset, record) in offset order.
    pub records: Vec<(u64, Record)>,
    /// The offset to fetch from next.
    pub next: u64,
}

/// Why a topic could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The name is taken.
    #[error("topic {0:?} already exists")]
    Exists(String),
    /// The name or settings are unusable.
    #[error("{0}")]
    Invalid(String),
}

/// The embedded log and store.
pub struct EmbeddedLog {
    db: Database,
    topics: RwLock<BTreeMap<String, TopicMeta>>,
    config: LogConfig,
    appended: Mutex<u64>,
    appended_signal: Condvar,
}

/// Checks a topic name the way Kafka does.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let valid = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(TopicError::Invalid(format!(
            "invalid topic name {name:?}: use 1 to 249 of the characters a-z A-Z 0-9 . _ -"
        )))
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the store in `dir`, which every file access goes through.
    pub fn open(dir: &cap_std::fs::Dir, config: LogConfig) -> Result<EmbeddedLog> {
        let file = dir
            .open_with(
                STORE_FILE,
                cap_std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true),
            )
            .with_context(|| format!("opening {STORE_FILE}"))?
            .into_std();
        let db = redb::backends::FileBackend::new(file)
            .and_then(|backend| Database::builder().create_with_backend(backend))
            .map_err(|err| match err {
                redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                    "the data directory is in use by another replica (its store {STORE_FILE} is locked)"
                ),
                err => anyhow::Error::new(err).context(format!("opening the store {STORE_FILE}")),
            })?;
        let log = EmbeddedLog {
            db,
            topics: RwLock::new(BTreeMap::new()),
            config,
            appended: Mutex::new(0),
            appended_signal: Condvar::new(),
        };
        log.init()?;
        Ok(log)
    }

    fn init(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            // Creating every table up front lets readers open them without checks.
            txn.open_table(TOPICS)?;
            txn.open_table(PARTITIONS)?;
            txn.open_table(LOG)?;
            txn.open_table(OFFSETS)?;
            txn.open_table(STREAM_TIME)?;
            txn.open_table(STATE)?;
            txn.open_table(TIMERS)?;
            txn.open_table(TIMER_KEYS)?;
            txn.open_table(DEPLOYMENTS)?;
            txn.open_table(ARTIFACTS)?;
            txn.open_table(CHECKPOINTS)?;
        }
        txn.commit()?;
        let read = self.db.begin_read()?;
        let table = read.open_table(TOPICS)?;
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        for item in table.iter()? {
            let (name, meta) = item?;
            let meta: TopicMeta = serde_json::from_slice(meta.value())
                .with_context(|| format!("reading the settings of topic {}", name.value()))?;
            topics.insert(meta.name.clone(), meta);
        }
        Ok(())
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Creates a topic.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> Result<TopicMeta, TopicError> {
        validate_topic_name(name)?;
        if !(1..=1024).contains(&partitions) {
            return Err(TopicError::Invalid(format!(
                "a topic needs between 1 and 1024 partitions, not {partitions}"
            )));
        }
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        if topics.contains_key(name) {
            return Err(TopicError::Exists(name.to_owned()));
        }
        let id = topics.values().map(|t| t.id + 1).max().unwrap_or(1);
        let meta = TopicMeta {
            name: name.to_owned(),
            id,
            partitions,
            retention_ms,
            retention_bytes,
        };
        let write = || -> Result<()> {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(TOPICS)?;
                table.insert(name, serde_json::to_vec(&meta)?.as_slice())?;
                let mut parts = txn.open_table(PARTITIONS)?;
                for p in 0..partitions {
                    parts.insert((id, p), (0, 0, 0))?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| TopicError::Invalid(format!("could not store topic {name}: {e:#}")))?;
        topics.insert(name.to_owned(), meta.clone());
        Ok(meta)
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The topic named `name`, or an error that says it does not exist.
    pub fn require_topic(&self, name: &str) -> Result<TopicMeta> {
        self.topic(name).with_context(|| {
            format!("topic {name:?} does not exist; create it with `fnctl topics create {name} --partitions N`")
        })
    }

    /// Every topic.
    pub fn topics(&self) -> Vec<TopicMeta> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The extent of each partition of `topic`.
    pub fn extents(&self, topic: &TopicMeta) -> Result<Vec<PartitionExtent>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PARTITIONS)?;
        (0..topic.partitions)
            .map(|p| {
                let (start, end, bytes) = table
                    .get((topic.id, p))?
                    .map(|v| v.value())
                    .unwrap_or_default();
                Ok(PartitionExtent { start, end, bytes })
            })
            .collect()
    }

    /// Appends records to `topic` in one transaction. A record goes to its given
    /// partition, else to its key's partition, else round the partitions. Returns each
    /// record's (partition, offset).
    pub fn append(
        &self,
        topic: &str,
        records: Vec<(Option<u32>, Record)>,
    ) -> Result<Vec<(u32, u64)>> {
        let meta = self.require_topic(topic)?;
        for (i, (partition, record)) in records.iter().enumerate() {
            let size = record.payload_len();
            ensure!(
                size <= self.config.max_record_bytes,
                "record {i} is {size} bytes; the largest record accepted is {} bytes",
                self.config.max_record_bytes
            );
            if let Some(p) = partition {
                ensure!(
                    *p < meta.partitions,
                    "topic {topic} has no partition {p} (it has {})",
                    meta.partitions
                );
            }
        }
        let txn = self.db.begin_write()?;
        let mut placed = Vec::with_capacity(records.len());
        {
            let mut parts = txn.open_table(PARTITIONS)?;
            let mut log = txn.open_table(LOG)?;
            let mut extents: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
            let round_robin_start =
                (parts.get((meta.id, 0))?.map(|v| v.value().1).unwrap_or(0)) as u32;
            for (i, (partition, record)) in records.into_iter().enumerate() {
                let p = partition.unwrap_or_else(|| {
                    partition_for(
                        record.key.as_deref(),
                        meta.partitions,
                        round_robin_start.wrapping_add(i as u32),
                    )
                });
                let extent = match extents.get_mut(&p) {
                    Some(extent) => extent,
                    None => {
                        let current = parts
                            .get((meta.id, p))?
                            .map(|v| v.value())
                            .unwrap_or_default();
                        extents.entry(p).or_insert(current)
                    }
                };
                let offset = extent.1;
                let encoded = record.encode();
                log.insert((meta.id, p, offset), encoded.as_slice())?;
                extent.1 += 1;
                extent.2 += encoded.len() as u64;
                placed.push((p, offset));
            }
            for (p, extent) in extents {
                parts.insert((meta.id, p), extent)?;
            }
        }
        txn.commit()?;
        self.signal_append();
        Ok(placed)
    }

    /// Up to `max` records of `topic`'s `partition` from offset `from` (or the log start,
    /// when retention has deleted `from`).
    pub fn fetch(
        &self,
        topic: &TopicMeta,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Fetched> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let mut fetched = Fetched {
            records: Vec::new(),
            next: from,
        };
        for item in log.range((topic.id, partition, from)..(topic.id, partition, u64::MAX))? {
            let (key, value) = item?;
            let offset = key.value().2;
            let record = Record::decode(value.value())
                .with_context(|| format!("decoding {}/{partition}@{offset}", topic.name))?;
            fetched.records.push((offset, record));
            fetched.next = offset + 1;
            if fetched.records.len() >= max {
                break;
            }
        }
        Ok(fetched)
    }

    /// The committed next offset of `group` on `topic`'s `partition`.
    pub fn committed(&self, group: &str, topic: &TopicMeta, partition: u32) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OFFSETS)?;
        Ok(table.get((group, topic.id, partition))?.map(|v| v.value()))
    }

    /// Stream time of `function`'s `partition` (the minimum `i64` before any event).
    pub fn stream_time(&self, function: &str, partition: u32) -> Result<i64> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STREAM_TIME)?;
        Ok(table
            .get((function, partition))?
            .map_or(i64::MIN, |v| v.value()))
    }

    /// A snapshot of `function`'s committed state on `partition`.
    pub fn partition_state(
        &self,
        function: &str,
        partition: u32,
    ) -> Result<Box<dyn CommittedState>> {
        let txn = self.db.begin_read()?;
        Ok(Box::new(state::SnapshotState::new(
            &txn, function, partition,
        )?))
    }

    /// Number of state entries `function` holds on `partition`.
    pub fn state_len(&self, function: &str, partition: u32) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        let mut n = 0;
        for item in table.range((function, partition, &[][..])..)? {
            let (key, _) = item?;
            let (f, p, _) = key.value();
            if f != function || p != partition {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// A counter that grows with every append; pass it to [`EmbeddedLog::wait_for_append`].
    pub fn append_generation(&self) -> u64 {
        *self.appended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until something is appended after `generation`, or `timeout` passes.
    pub fn wait_for_append(&self, generation: u64, timeout: Duration) {
        let guard = self.appended.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .appended_signal
            .wait_timeout_while(guard, timeout, |g| *g == generation);
    }

    fn signal_append(&self) {
        *self.appended.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.appended_signal.notify_all();
    }

    /// Stores a deployment history document under `name`.
    pub fn put_deployment(&self, name: &str, doc: &[u8]) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(DEPLOYMENTS)?.insert(name, doc)?;
        txn.commit()?;
        Ok(())
    }

    /// Every stored deployment document.
    pub fn deployments(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEPLOYMENTS)?;
        let mut docs = Vec::new();
        for item in table.iter()? {
            let (name, doc) = item?;
            docs.push((name.value().to_owned(), doc.value().to_vec()));
        }
        Ok(docs)
    }

    /// Stores a component under its sha256.
    pub fn put_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(ARTIFACTS)?.insert(sha256, bytes)?;
        txn.commit()?;
        Ok(())
    }

    /// The component with `sha256`.
    pub fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARTIFACTS)?;
        Ok(table.get(sha256)?.map(|v| v.value().to_vec()))
    }

    /// The changelog offset `function`'s local state of `partition` is restored to.
    pub fn checkpoint(&self, function: &str, partition: u32) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHECKPOINTS)?;
        Ok(table.get((function, partition))?.map(|v| v.value()))
    }

    /// Records that the local state of `function`'s `partition` holds every change up to
    /// changelog offset `offset`, durably along with all state written before.
    pub fn put_checkpoint(&self, function: &str, partition: u32, offset: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(CHECKPOINTS)?
            .insert((function, partition), offset)?;
        txn.commit()?;
        Ok(())
    }

    /// Drops `function`'s local state, timers, stream time and checkpoint of `partition`.
    pub fn clear_state(&self, function: &str, partition: u32) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
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
            txn.open_table(CHECKPOINTS)?.remove((function, partition))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Checks that `topic` exists, creating it with `partitions` when it does not.
    pub fn ensure_topic(&self, name: &str, partitions: u32) -> Result<TopicMeta> {
        match self.create_topic(name, partitions, None, None) {
            Ok(meta) => Ok(meta),
            Err(TopicError::Exists(_)) => self.require_topic(name),
            Err(err) => bail!(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::{Effects, Output};
    use crate::source::Commit;

    fn open(dir: &tempfile::TempDir) -> EmbeddedLog {
        let root = cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority())
            .expect("dir");
        EmbeddedLog::open(&root, LogConfig::default()).expect("open")
    }

    fn record(ts: i64, value: &str) -> (Option<u32>, Record) {
        let record = Record {
            timestamp_ms: ts,
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
        };
        (Some(0), record)
    }

    #[test]
    fn appends_offsets_and_state_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let log = open(&dir);
            log.create_topic("in", 1, None, None).expect("topic");
            log.create_topic("out", 1, None, None).expect("topic");
            log.append("in", vec![record(1, "a"), record(2, "b")])
                .expect("append");
            let mut effects = Effects::default();
            effects.state.insert(b"k".to_vec(), Some(b"v".to_vec()));
            effects.timers.insert(b"t".to_vec(), Some(99));
            effects.outputs.push(Output {
                topic: "out".into(),
                fallback_partition: 0,
                record: record(2, "A").1,
            });
            log.commit(&[Commit {
                group: "f",
                partition: 0,
                offsets: vec![("in".into(), 1)],
                stream_time_ms: 2,
                effects: &effects,
            }])
            .expect("commit");
        }
        let log = open(&dir);
        let input = log.require_topic("in").expect("topic kept");
        let fetched = log.fetch(&input, 0, 0, 10).expect("fetch");
        let values: Vec<&[u8]> = fetched
            .records
            .iter()
            .filter_map(|(_, r)| r.value.as_deref())
            .collect();
        assert_eq!(values, vec![&b"a"[..], b"b"]);
        assert_eq!(log.committed("f", &input, 0).expect("offsets"), Some(1));
        assert_eq!(log.stream_time("f", 0).expect("stream time"), 2);
        let state = log.partition_state("f", 0).expect("state");
        assert_eq!(state.get(b"k").expect("get"), Some(b"v".to_vec()));
        assert_eq!(state.timer(b"t").expect("timer"), Some(99));
        assert!(
            log.partition_state("g", 0)
                .expect("state")
                .get(b"k")
                .expect("get")
                .is_none()
        );
        let out = log.require_topic("out").expect("topic");
        assert_eq!(log.fetch(&out, 0, 0, 10).expect("fetch").records.len(), 1);
    }

    #[test]
    fn retention_deletes_from_the_front_by_age_and_by_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open(&dir);
        log.create_topic("aged", 1, Some(1_000), None)
            .expect("topic");
        log.create_topic("sized", 1, None, Some(200))
            .expect("topic");
        log.append("aged", (0..10).map(|i| record(i * 1_000, "x")).collect())
            .expect("append");
        log.append(
            "sized",
            (0..10).map(|i| record(i, &"y".repeat(50))).collect(),
        )
        .expect("append");
        let report = log.apply_retention(9_500).expect("retention");
        assert!(report.records > 0);
        let aged = log.require_topic("aged").expect("topic");
        let extent = log.extents(&aged).expect("extents")[0];
        assert_eq!(
            (extent.start, extent.end),
            (9, 10),
            "records older than 1 s are gone"
        );
        let fetched = log.fetch(&aged, 0, 0, 100).expect("fetch");
        assert_eq!(
            fetched.records.first().map(|(o, _)| *o),
            Some(9),
            "offsets do not move"
        );
        let sized = log.require_topic("sized").expect("topic");
        let extent = log.extents(&sized).expect("extents")[0];
        assert!(extent.bytes <= 200, "{extent:?}");
        assert_eq!(extent.end, 10);
        assert!(extent.start > 0);
    }

    #[test]
    fn bad_topics_and_records_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open(&dir);
        assert!(matches!(
            log.create_topic("no spaces", 1, None, None),
            Err(TopicError::Invalid(_))
        ));
        assert!(matches!(
            log.create_topic("t", 0, None, None),
            Err(TopicError::Invalid(_))
        ));
        log.create_topic("t", 2, None, None).expect("topic");
        assert!(matches!(
            log.create_topic("t", 2, None, None),
            Err(TopicError::Exists(_))
        ));
        let big = Record {
            value: Some(vec![0; (1 << 20) + 1]),
            ..Record::default()
        };
        let err = log.append("t", vec![(None, big)]).expect_err("too big");
        assert!(err.to_string().contains("largest record"), "{err}");
        let t = log.require_topic("t").expect("topic");
        assert_eq!(
            log.extents(&t)
                .expect("extents")
                .iter()
                .map(|e| e.end)
                .sum::<u64>(),
            0
        );
    }
}
