//! A record as a function partition consumes it: from which input topic and offset, and
//! the committed positions a partition continues from.

use std::collections::BTreeMap;

use super::record::Record;

/// A record read from an input topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEvent {
    /// The input topic.
    pub topic: String,
    /// Offset in the topic partition.
    pub offset: u64,
    /// The record.
    pub record: Record,
}

/// Next offset to read, per input topic.
pub type Positions = BTreeMap<String, u64>;
