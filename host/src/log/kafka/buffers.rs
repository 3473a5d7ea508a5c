//! Records fetched from Kafka and not yet committed, per input topic partition, and when
//! to pause and resume fetching so a busy partition does not buffer without bound.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::model::record::Record;

/// Records buffered per input partition before fetching from it pauses.
pub const MAX_BUFFERED: usize = 20_000;

/// An input topic partition.
pub type TopicPartition = (String, u32);

/// The buffered records of one function's inputs.
#[derive(Debug, Default)]
pub struct Buffers {
    records: BTreeMap<TopicPartition, VecDeque<(u64, Record)>>,
    paused: BTreeSet<TopicPartition>,
}

/// Fetching to pause and to resume, as [`Buffers::throttle`] decides.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Partitions whose buffer is full.
    pub pause: Vec<TopicPartition>,
    /// Paused partitions whose buffer has drained enough.
    pub resume: Vec<TopicPartition>,
}

impl Buffers {
    /// Keeps a fetched record until it is committed.
    pub fn push(&mut self, topic: &str, partition: u32, offset: u64, record: Record) {
        self.records
            .entry((topic.to_owned(), partition))
            .or_default()
            .push_back((offset, record));
    }

    /// Up to `max` records of `topic`'s `partition` from offset `from`.
    pub fn from(&self, topic: &str, partition: u32, from: u64, max: usize) -> Vec<(u64, Record)> {
        self.records
            .get(&(topic.to_owned(), partition))
            .map(|b| {
                // Offsets only grow along a buffer.
                let start = b.partition_point(|(o, _)| *o < from);
                b.range(start..).take(max).cloned().collect()
            })
            .unwrap_or_default()
    }

    /// Whether a record at or after `position` is buffered.
    pub fn has_from(&self, topic: &str, partition: u32, position: u64) -> bool {
        self.records
            .get(&(topic.to_owned(), partition))
            .is_some_and(|b| b.back().is_some_and(|(o, _)| *o >= position))
    }

    /// Drops records before `next`, which are committed.
    pub fn committed(&mut self, topic: &str, partition: u32, next: u64) {
        if let Some(buffer) = self.records.get_mut(&(topic.to_owned(), partition)) {
            while buffer.front().is_some_and(|(o, _)| *o < next) {
                buffer.pop_front();
            }
        }
    }

    /// Forgets a partition the group took away.
    pub fn forget(&mut self, topic: &str, partition: u32) {
        let key = (topic.to_owned(), partition);
        self.records.remove(&key);
        self.paused.remove(&key);
    }

    /// Which partitions to pause (full buffers) and resume (paused ones drained to a
    /// quarter), counting the decision as done.
    pub fn throttle(&mut self) -> Throttle {
        let mut throttle = Throttle::default();
        for (key, buffer) in &self.records {
            let paused = self.paused.contains(key);
            if !paused && buffer.len() >= MAX_BUFFERED {
                throttle.pause.push(key.clone());
            } else if paused && buffer.len() < MAX_BUFFERED / 4 {
                throttle.resume.push(key.clone());
            }
        }
        self.paused.extend(throttle.pause.iter().cloned());
        for key in &throttle.resume {
            self.paused.remove(key);
        }
        throttle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(buffers: &mut Buffers, topic: &str, offsets: std::ops::Range<u64>) {
        for offset in offsets {
            buffers.push(topic, 0, offset, Record::default());
        }
    }

    #[test]
    fn reads_start_at_the_position_and_commits_trim_the_front() {
        let mut buffers = Buffers::default();
        fill(&mut buffers, "in", 10..20);
        let offsets = |b: &Buffers, from, max| -> Vec<u64> {
            b.from("in", 0, from, max)
                .into_iter()
                .map(|(o, _)| o)
                .collect()
        };
        assert_eq!(offsets(&buffers, 15, 3), vec![15, 16, 17]);
        assert!(buffers.has_from("in", 0, 19) && !buffers.has_from("in", 0, 20));
        assert!(!buffers.has_from("other", 0, 0));
        buffers.committed("in", 0, 18);
        assert_eq!(offsets(&buffers, 0, 100), vec![18, 19]);
        buffers.forget("in", 0);
        assert!(offsets(&buffers, 0, 100).is_empty());
    }

    #[test]
    fn a_full_buffer_pauses_its_partition_until_it_drains_to_a_quarter() {
        let mut buffers = Buffers::default();
        fill(&mut buffers, "in", 0..MAX_BUFFERED as u64);
        let key = ("in".to_owned(), 0);
        assert_eq!(buffers.throttle().pause, vec![key.clone()]);
        assert_eq!(buffers.throttle(), Throttle::default(), "paused once");
        buffers.committed("in", 0, (MAX_BUFFERED / 2) as u64);
        assert_eq!(
            buffers.throttle(),
            Throttle::default(),
            "half full stays paused"
        );
        buffers.committed("in", 0, (MAX_BUFFERED - MAX_BUFFERED / 4 + 1) as u64);
        assert_eq!(buffers.throttle().resume, vec![key]);
        assert_eq!(buffers.throttle(), Throttle::default());
    }
}
