//! The tables of the embedded store and the values they hold. Every key starts with what
//! scopes it (topic id, function name, partition), so one range scan reads one
//! partition's data in order.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "streamfn.redb";

/// Topic name → topic metadata (JSON, sealed).
pub const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");
/// (topic id, partition) → (log start offset, next offset, bytes held).
pub const PARTITIONS: TableDefinition<(u32, u32), (u64, u64, u64)> =
    TableDefinition::new("partitions");
/// (topic id, partition, last offset) → a batch of the partition's records up to that
/// offset, sealed; see [`super::batch`].
pub const RECORDS: TableDefinition<(u32, u32, u64), &[u8]> = TableDefinition::new("records");
/// Up to store format 3, (topic id, partition, offset) → one encoded record, sealed from
/// format 2 on. Opening such a store moves its records into [`RECORDS`].
pub const LOG: TableDefinition<(u32, u32, u64), &[u8]> = TableDefinition::new("log");
/// (group, topic id, partition) → next offset to read.
pub const OFFSETS: TableDefinition<(&str, u32, u32), u64> = TableDefinition::new("offsets");
/// (function, partition) → stream time in milliseconds.
pub const STREAM_TIME: TableDefinition<(&str, u32), i64> = TableDefinition::new("stream_time");
/// (function, partition, key) → value, sealed.
pub const STATE: TableDefinition<(&str, u32, &[u8]), &[u8]> = TableDefinition::new("state");
/// A state entry read out of [`STATE`]: (function, partition, key) and the stored value.
pub type StateRow = ((String, u32, Vec<u8>), Vec<u8>);
/// (function, partition, sequence number) → one commit's changes to the state, sealed;
/// see [`super::journal`].
pub const JOURNAL: TableDefinition<(&str, u32, u64), &[u8]> = TableDefinition::new("journal");
/// (function, partition) → the rows of [`JOURNAL`] in front of [`STATE`] (first, next)
/// and the bytes of keys and values they hold.
pub const JOURNAL_HEADS: TableDefinition<(&str, u32), (u64, u64, u64)> =
    TableDefinition::new("journal_heads");
/// (function, partition) → a fold under way: the rows before this sequence number are
/// being folded into [`STATE`], and their keys from this one on are left to copy.
pub const JOURNAL_FOLDS: TableDefinition<(&str, u32), (u64, &[u8])> =
    TableDefinition::new("journal_folds");
/// (function, partition) → bytes of the keys and values of its state.
pub const STATE_BYTES: TableDefinition<(&str, u32), u64> = TableDefinition::new("state_bytes");
/// (function, partition, time, key) → nothing: timers in firing order.
pub const TIMERS: TableDefinition<(&str, u32, i64, &[u8]), ()> = TableDefinition::new("timers");
/// (function, partition, key) → time: finds a timer to replace or cancel.
pub const TIMER_KEYS: TableDefinition<(&str, u32, &[u8]), i64> = TableDefinition::new("timer_keys");
/// (topic id, partition, offset) → nothing: records a salvage of a damaged store left out.
pub const GAPS: TableDefinition<(u32, u32, u64), ()> = TableDefinition::new("gaps");
/// Producer id → its last batch: the sequence expected next, when it was written, and
/// where its records went (sealed); see [`crate::log::Idempotence`].
pub const PRODUCERS: TableDefinition<&str, &[u8]> = TableDefinition::new("producers");
/// Deployment name → deployment history (JSON, sealed).
pub const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");
/// Component sha256 → component bytes.
pub const ARTIFACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("artifacts");
/// (function, partition) → changelog offset the local copy of the state is restored to.
pub const CHECKPOINTS: TableDefinition<(&str, u32), u64> = TableDefinition::new("checkpoints");
/// (function, partition) → the version whose replay the partition carried out last.
pub const REPLAYS: TableDefinition<(&str, u32), u32> = TableDefinition::new("replays");

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
