//! The log behind a replica, and the one seam to it: [`Backend`]. Topics and records,
//! what a deployment needs made before it runs, where each function partition stands and
//! who runs it, the sources runners read from and commit to, the registry's store, and
//! the cluster of replicas. `embedded/` is the single-node log in the data directory;
//! `kafka/` is Apache Kafka with a local store for state. Nothing above this module
//! knows which one it has.

pub mod embedded;
pub mod kafka;
mod merge;

use std::sync::Arc;

use anyhow::Result;
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};

pub use self::embedded::Trouble;
pub use self::merge::{merge_by_timestamp, merge_from};
use crate::metrics::Metrics;
use crate::model::deployment::{DeploySpec, Deployment};
use crate::model::record::Record;
use crate::registry::RegistryStore;
use crate::runner::Sources;
use crate::state::CommittedState;

/// Which log a replica runs on.
pub enum Mode {
    /// The embedded log in the data directory.
    Embedded(embedded::LogConfig),
    /// A Kafka cluster; the data directory keeps a local copy of state.
    Kafka(kafka::KafkaOptions),
}

/// Who opens the log: the replica, with its data directory and its place in a cluster.
pub struct Opener<'a> {
    /// The data directory; every file access goes through it.
    pub dir: &'a Dir,
    /// This replica's id, unique among the replicas of a cluster.
    pub replica: &'a str,
    /// Its admin API's address, announced to the other replicas.
    pub admin: &'a str,
    /// The replica's metrics.
    pub metrics: &'a Arc<Metrics>,
    /// Bytes of committed state values each partition's runner keeps in memory at most.
    pub state_cache_bytes: usize,
}

/// Opens the log of `mode`.
pub fn open(mode: Mode, opener: &Opener<'_>) -> Result<Arc<dyn Backend>> {
    Ok(match mode {
        Mode::Embedded(config) => Arc::new(embedded::EmbeddedBackend::open(opener, config)?),
        Mode::Kafka(options) => Arc::new(kafka::KafkaBackend::open(opener, options)?),
    })
}

/// Why a topic or record operation failed, for callers that answer differently.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The topic name is taken.
    #[error("topic {0:?} already exists")]
    Exists(String),
    /// No topic has that name.
    #[error("topic {0:?} does not exist; create it with `fnctl topics create {0} --partitions N`")]
    NoTopic(String),
    /// The request is unusable: a bad name or setting, a record too large, a partition
    /// the topic does not have.
    #[error("{0}")]
    Invalid(String),
    /// This log's records are not served by the replica; the message says where they are.
    #[error("{0}")]
    Elsewhere(String),
    /// The log cannot take writes now (a full disk, a failed device); it says why.
    #[error("the log cannot take writes now: {}", .0.reason)]
    Unavailable(Trouble),
    /// The log itself failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// What makes a produce request safe to send again: the producer's id and the request's
/// sequence number, one more than the last it sent, as Kafka's idempotent producer
/// numbers its batches. The log writes each sequence of a producer once and answers a
/// repeat of the last with the same placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotence<'a> {
    /// The producer, as it names itself.
    pub producer: &'a str,
    /// The request's number.
    pub sequence: u64,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Delete records older than this many milliseconds.
    pub retention_ms: Option<u64>,
    /// Keep about this many bytes per partition.
    pub retention_bytes: Option<u64>,
}

/// A topic as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Retention by age.
    pub retention_ms: Option<u64>,
    /// Retention by size.
    pub retention_bytes: Option<u64>,
    /// (start, end) offsets per partition.
    pub offsets: Vec<(u64, u64)>,
    /// Records held.
    pub records: u64,
    /// Bytes held.
    pub bytes: u64,
}

/// Records read from a partition.
#[derive(Debug, Default)]
pub struct Fetched {
    /// (offset, record) in offset order.
    pub records: Vec<(u64, Record)>,
    /// The offset to read from next.
    pub next: u64,
}

/// Where a function stands on one input partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionStatus {
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset the function will read.
    pub committed: u64,
    /// Next offset the topic will write.
    pub end: u64,
    /// Records not yet handled.
    pub lag: u64,
    /// The replica that runs it ([`NO_OWNER`] when none does now).
    pub owner: String,
}

/// The owner of a partition no replica runs now, as during a rebalance.
pub const NO_OWNER: &str = "-";

impl PartitionStatus {
    /// The status of `topic`'s `partition` holding offsets `start..end`, where the
    /// function's `committed` offset (none before its first commit) counts from `start`.
    pub fn new(
        topic: &str,
        partition: u32,
        (start, end): (u64, u64),
        committed: Option<u64>,
        owner: String,
    ) -> Self {
        let committed = committed.unwrap_or(start).max(start);
        PartitionStatus {
            topic: topic.to_owned(),
            partition,
            committed,
            end,
            lag: end.saturating_sub(committed),
            owner,
        }
    }
}

/// A restore of a function partition's state under way on this replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// The partition.
    pub partition: u32,
    /// Changelog records read so far.
    pub records: u64,
    /// Changelog records to read at most (some may be transaction markers).
    pub of: u64,
    /// Bytes of keys and values read so far.
    pub bytes: u64,
    /// When it began, milliseconds since the Unix epoch.
    pub started_ms: i64,
}

/// Where the committed state of a function partition can be read now.
pub enum StateAt {
    /// Here: the state as of the partition's last commit.
    Here(Box<dyn CommittedState>),
    /// On another replica, which runs the partition.
    Elsewhere {
        /// Its id.
        replica: String,
        /// Its admin API.
        admin: String,
    },
    /// Nowhere now, and why: the partition is restoring its state here, or no replica
    /// runs it for the moment (a rebalance).
    Unavailable(String),
}

/// What the replica's store uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageUse {
    /// Bytes of the store file.
    pub store_bytes: u64,
    /// Bytes free on its disk.
    pub free_bytes: u64,
    /// Failed reads and writes of the store since the replica started.
    pub io_errors: u64,
}

/// The log behind a replica, as the replica, the admin API and the runners use it.
pub trait Backend: Sources {
    /// `embedded` or `kafka`.
    fn kind(&self) -> &'static str;

    /// Every topic.
    fn topics(&self) -> Result<Vec<TopicInfo>, LogError>;

    /// The topic named `name`.
    fn topic(&self, name: &str) -> Result<TopicInfo, LogError>;

    /// Creates a topic.
    fn create_topic(&self, topic: &NewTopic) -> Result<TopicInfo, LogError>;

    /// Appends records to `topic` at once: each to its given partition, else its key's,
    /// else round the partitions. Returns each record's (partition, offset). With
    /// `idempotence`, a request sent again is written once.
    fn append(
        &self,
        topic: &str,
        records: Vec<(Option<u32>, Record)>,
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<Vec<(u32, u64)>, LogError>;

    /// Up to `max` records of `topic`'s `partition` from offset `from`.
    fn read(&self, topic: &str, partition: u32, from: u64, max: usize)
    -> Result<Fetched, LogError>;

    /// The partition count of `topic`, or an error that says it does not exist.
    fn partitions(&self, topic: &str) -> Result<u32>;

    /// Every topic functions may read, with its partition count: what an input pattern
    /// is matched against.
    fn topic_partitions(&self) -> Result<Vec<(String, u32)>>;

    /// The inputs `spec` reads now: its named topics and those its pattern matches.
    fn inputs_of(&self, spec: &DeploySpec) -> Result<Vec<String>> {
        if spec.input_pattern.is_none() {
            return Ok(spec.inputs.clone());
        }
        spec.inputs_among(&self.topic_partitions()?)
    }

    /// Makes what `spec` needs before it runs, its inputs having `partitions` each: its
    /// output and dead-letter topics, its state's changelog, and for a function that
    /// starts at the end, its starting offsets.
    fn prepare(&self, spec: &DeploySpec, partitions: u32) -> Result<()>;

    /// Where `deployment` stands on each of its input partitions, and who runs them.
    fn partition_status(&self, deployment: &Deployment) -> Result<Vec<PartitionStatus>>;

    /// State entries `function` holds on `partition` in this replica.
    fn state_entries(&self, function: &str, partition: u32) -> Result<u64>;

    /// Bytes of state (keys and values) `function` holds on `partition` in this replica.
    fn state_bytes(&self, function: &str, partition: u32) -> Result<u64>;

    /// The version whose replay `function`'s `partition` carried out last, as far as this
    /// replica knows (on Kafka, for the partitions it runs).
    fn replayed(&self, function: &str, partition: u32) -> Result<Option<u32>>;

    /// Partitions whose state is being restored now.
    fn restoring(&self) -> usize;

    /// The restores of `function`'s partitions under way here.
    fn restores(&self, function: &str) -> Vec<Restore> {
        let _ = function;
        Vec::new()
    }

    /// The partitions of `function` that other replicas run whose state this replica
    /// keeps a standby copy of, each with how many changelog records the copy lacks.
    fn standbys(&self, function: &str) -> Vec<(u32, u64)> {
        let _ = function;
        Vec::new()
    }

    /// Where the committed state of `function`'s `partition` can be read now.
    fn state_at(&self, function: &str, partition: u32) -> Result<StateAt>;

    /// Replicas of the cluster heard from recently (this one alone, on a single node).
    fn replicas(&self) -> Vec<String>;

    /// Where the registry keeps deployments and components.
    fn registry_store(&self) -> Arc<dyn RegistryStore>;

    /// Housekeeping due at `now_ms`: retention of old records, where the log does it.
    fn maintain(&self, now_ms: i64) -> Result<()>;

    /// Why the replica's store cannot be written now, if it cannot.
    fn trouble(&self) -> Option<Trouble>;

    /// Tries to make a store in trouble take writes again; returns whether it does.
    fn recover(&self) -> bool;

    /// The replica's store: its size, the free space of its disk, and its failed reads
    /// and writes so far.
    fn storage(&self) -> Result<StorageUse>;

    /// Leaves the cluster and stops the log's own threads.
    fn shutdown(&self);
}
