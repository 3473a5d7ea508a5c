//! Records fetched from Kafka and not yet committed, per input topic partition, and when
//! to pause and resume fetching so a busy partition does not buffer without bound.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::model::record::Record;

/// Records buffered per input partition before fetching from it pauses. A record stays
/// buffered until its commit, so this is twice what a commit covers at most: the next
/// pass reads while the last one's records wait for their commit.
pub const MAX_BUFFERED: usize = 200_000;
/// Bytes of keys, values and headers buffered per input partition before fetching from
/// it pauses, whatever the records' count.
pub const MAX_BUFFERED_BYTES: usize = 64 << 20;
/// What a buffered record costs besides its payload: its offset, timestamp and slots.
const RECORD_OVERHEAD: usize = 64;

/// An input topic partition.
pub type TopicPartition = (String, u32);

/// The buffered records of one function's inputs.
#[derive(Debug, Default)]
pub struct Buffers {
    records: BTreeMap<TopicPartition, Buffer>,
    paused: BTreeSet<TopicPartition>,
}

/// One input partition's records, offsets growing from front to back, and their bytes.
#[derive(Debug, Default)]
struct Buffer {
    records: VecDeque<(u64, Record)>,
    bytes: usize,
}

impl Buffer {
    fn cost(record: &Record) -> usize {
        record.payload_len() + RECORD_OVERHEAD
    }

    /// Whether it holds a `1/share` of either bound: all of one pauses fetching, and
    /// fetching resumes below a quarter of both.
    fn holds(&self, share: usize) -> bool {
        self.records.len() >= MAX_BUFFERED / share || self.bytes >= MAX_BUFFERED_BYTES / share
    }
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
        let buffer = self
            .records
            .entry((topic.to_owned(), partition))
            .or_default();
        buffer.bytes += Buffer::cost(&record);
        buffer.records.push_back((offset, record));
    }

    /// Up to `max` records of `topic`'s `partition` from offset `from`.
    pub fn from(&self, topic: &str, partition: u32, from: u64, max: usize) -> Vec<(u64, Record)> {
        self.records
            .get(&(topic.to_owned(), partition))
            .map(|b| {
                let start = b.records.partition_point(|(o, _)| *o < from);
                b.records.range(start..).take(max).cloned().collect()
            })
            .unwrap_or_default()
    }

    /// Whether a record at or after `position` is buffered.
    pub fn has_from(&self, topic: &str, partition: u32, position: u64) -> bool {
        self.records
            .get(&(topic.to_owned(), partition))
            .is_some_and(|b| b.records.back().is_some_and(|(o, _)| *o >= position))
    }

    /// Drops records before `next`, which are committed.
    pub fn committed(&mut self, topic: &str, partition: u32, next: u64) {
        if let Some(buffer) = self.records.get_mut(&(topic.to_owned(), partition)) {
            while buffer.records.front().is_some_and(|(o, _)| *o < next) {
                if let Some((_, record)) = buffer.records.pop_front() {
                    buffer.bytes = buffer.bytes.saturating_sub(Buffer::cost(&record));
                }
            }
        }
    }

    /// Forgets a partition the group took away.
    pub fn forget(&mut self, topic: &str, partition: u32) {
        let key = (topic.to_owned(), partition);
        self.records.remove(&key);
        self.paused.remove(&key);
    }

    /// Which partitions to pause (full buffers, by records or by bytes) and resume
    /// (paused ones drained to a quarter of both), counting the decision as done.
    pub fn throttle(&mut self) -> Throttle {
        let mut throttle = Throttle::default();
        for (key, buffer) in &self.records {
            let paused = self.paused.contains(key);
            if !paused && buffer.holds(1) {
                throttle.pause.push(key.clone());
            } else if paused && !buffer.holds(4) {
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

    #[test]
    fn large_records_pause_their_partition_by_bytes_long_before_the_count() {
        let mut buffers = Buffers::default();
        let large = Record {
            value: Some(vec![0; 1 << 20]),
            ..Record::default()
        };
        let fit = (MAX_BUFFERED_BYTES >> 20) as u64;
        for offset in 0..fit - 1 {
            buffers.push("in", 0, offset, large.clone());
        }
        assert_eq!(buffers.throttle(), Throttle::default(), "not full yet");
        buffers.push("in", 0, fit - 1, large.clone());
        let key = ("in".to_owned(), 0);
        assert_eq!(buffers.throttle().pause, vec![key.clone()]);
        buffers.committed("in", 0, fit / 2);
        assert_eq!(
            buffers.throttle(),
            Throttle::default(),
            "half the bytes left"
        );
        buffers.committed("in", 0, fit - fit / 4 + 1);
        assert_eq!(buffers.throttle().resume, vec![key.clone()]);
        buffers.committed("in", 0, fit);
        assert_eq!(
            buffers.records[&key].bytes, 0,
            "nothing left, no bytes counted"
        );
        buffers.forget("in", 0);
        buffers.push("in", 0, fit, large.clone());
        assert_eq!(buffers.records[&key].bytes, Buffer::cost(&large));
    }
}
