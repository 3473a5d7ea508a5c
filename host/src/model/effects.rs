//! Effects a function asked for and the host has not committed yet (state writes, timer
//! changes and output records, buffered per call so a failed call leaves nothing behind),
//! and the commit that makes a run of batches durable with its input offsets.

use std::collections::BTreeMap;

use super::record::Record;

/// A record bound for a topic, not yet assigned a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Destination topic.
    pub topic: String,
    /// Partition to use when the record has no key.
    pub fallback_partition: u32,
    /// The record.
    pub record: Record,
}

/// Buffered effects, in the order they were asked for.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// State writes; `None` deletes the key.
    pub state: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Timer changes; `None` cancels the timer.
    pub timers: BTreeMap<Vec<u8>, Option<i64>>,
    /// Output records, including dead letters.
    pub outputs: Vec<Output>,
}

impl Effects {
    /// Adds effects that happened after these, later writes winning.
    pub fn absorb(&mut self, later: Effects) {
        self.state.extend(later.state);
        self.timers.extend(later.timers);
        self.outputs.extend(later.outputs);
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty() && self.timers.is_empty() && self.outputs.is_empty()
    }
}

/// Everything one run of batches of one function partition commits, atomically.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    /// The function (its consumer group, and the owner of the state).
    pub group: &'a str,
    /// The input partition.
    pub partition: u32,
    /// Next offset per input topic, for the topics the run moved.
    pub offsets: Vec<(String, u64)>,
    /// Stream time after the batches.
    pub stream_time_ms: i64,
    /// Accepted effects, dead letters included among the outputs.
    pub effects: &'a Effects,
    /// What the state writes add to the bytes the partition's state holds (less than 0
    /// when they free more), when the writer counted it as it wrote, as a runner does;
    /// `None` has the store count it from the values the writes replace.
    pub state_growth: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_writes_win() {
        let mut first = Effects::default();
        first.state.insert(b"a".to_vec(), Some(b"1".to_vec()));
        first.timers.insert(b"t".to_vec(), Some(5));
        let mut second = Effects::default();
        second.state.insert(b"a".to_vec(), None);
        second.timers.insert(b"t".to_vec(), Some(9));
        first.absorb(second);
        assert_eq!(first.state[&b"a".to_vec()], None);
        assert_eq!(first.timers[&b"t".to_vec()], Some(9));
    }
}
