//! Records of the embedded log: durable appends (placed by partition, key or round
//! robin, as Kafka's producer does) and fetches by offset.
use anyhow::{Context as _, Result};
use redb::{ReadableDatabase, ReadableTable};

use super::batch::{Appends, Batch};
use super::frame::{self, damaged};
use super::store::EmbeddedLog;
use super::tables::TopicMeta;
use super::tables::{PARTITIONS, PRODUCERS, RECORDS};
use crate::log::{Fetched, Idempotence, LogError};
use crate::model::clock::now_ms;
use crate::model::partitioner::partition_for;
use crate::model::record::Record;

impl EmbeddedLog {
    /// Appends records to `topic` in one transaction. A record goes to its given
    /// partition, else to its key's partition, else round the partitions. Returns each
    /// record's (partition, offset).
    pub fn append(
        &self,
        topic: &str,
        records: Vec<(Option<u32>, Record)>,
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<Vec<(u32, u64)>, LogError> {
        let meta = self
            .topic(topic)
            .ok_or_else(|| LogError::NoTopic(topic.to_owned()))?;
        for (i, (partition, record)) in records.iter().enumerate() {
            let size = record.payload_len();
            if size > self.config.max_record_bytes {
                return Err(LogError::Invalid(format!(
                    "record {i} is {size} bytes; the largest record accepted is {} bytes",
                    self.config.max_record_bytes
                )));
            }
            if let Some(p) = partition.filter(|p| *p >= meta.partitions) {
                return Err(LogError::Invalid(format!(
                    "topic {topic} has no partition {p} (it has {})",
                    meta.partitions
                )));
            }
        }
        match self.write_records(&meta, records, idempotence)? {
            Appended::Written(placed) | Appended::Repeated(placed) => Ok(placed),
            Appended::OutOfOrder { expected } => Err(LogError::Invalid(format!(
                "producer {} sent request {} where {expected} was due: a request was lost between them",
                idempotence.map_or("", |i| i.producer),
                idempotence.map_or(0, |i| i.sequence)
            ))),
        }
    }

    /// Writes records that passed the checks, in one transaction, once per sequence of a
    /// producer.
    fn write_records(
        &self,
        meta: &TopicMeta,
        records: Vec<(Option<u32>, Record)>,
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<Appended> {
        let appended = self.guard(&format!("appending to {}", meta.name), |db| {
            let txn = db.begin_write()?;
            let mut producers = txn.open_table(PRODUCERS)?;
            if let Some(idempotence) = idempotence
                && let Some(last) = producers.get(idempotence.producer)?
            {
                let last = LastBatch::open(idempotence.producer, last.value())?;
                if idempotence.sequence + 1 == last.next {
                    return Ok(Appended::Repeated(last.placed));
                }
                if idempotence.sequence != last.next {
                    return Ok(Appended::OutOfOrder {
                        expected: last.next,
                    });
                }
            }
            let mut placed = Vec::with_capacity(records.len());
            {
                let mut extents = txn.open_table(PARTITIONS)?;
                let mut rows = txn.open_table(RECORDS)?;
                let mut appends = Appends::default();
                let round_robin_start =
                    (extents.get((meta.id, 0))?.map(|v| v.value().1).unwrap_or(0)) as u32;
                for (i, (partition, record)) in records.iter().enumerate() {
                    let p = partition.unwrap_or_else(|| {
                        partition_for(
                            record.key.as_deref(),
                            meta.partitions,
                            round_robin_start.wrapping_add(i as u32),
                        )
                    });
                    let offset = appends.push(&extents, &mut rows, meta.id, p, record)?;
                    placed.push((p, offset));
                }
                appends.finish(&mut extents, &mut rows)?;
            }
            if let Some(idempotence) = idempotence {
                let last = LastBatch {
                    next: idempotence.sequence + 1,
                    at_ms: now_ms(),
                    placed: placed.clone(),
                };
                producers.insert(
                    idempotence.producer,
                    last.seal(idempotence.producer).as_slice(),
                )?;
            }
            drop(producers);
            txn.commit()?;
            Ok(Appended::Written(placed))
        })?;
        if matches!(appended, Appended::Written(_)) {
            self.signal_append();
        }
        Ok(appended)
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
        let mut records = Vec::with_capacity(max.min(MAX_RESERVED));
        let next = self.fetch_each(topic, partition, from, max, |offset, record| {
            records.push((offset, record));
        })?;
        Ok(Fetched { records, next })
    }

    /// Hands up to `max` records of `topic`'s `partition` from offset `from` (or the log
    /// start) to `each`, with their offsets, as [`EmbeddedLog::fetch`] reads them; returns
    /// the offset to read from next.
    pub fn fetch_each(
        &self,
        topic: &TopicMeta,
        partition: u32,
        from: u64,
        max: usize,
        mut each: impl FnMut(u64, Record),
    ) -> Result<u64> {
        let what = format!("reading {} partition {partition}", topic.name);
        self.guard(&what, |db| {
            let txn = db.begin_read()?;
            let rows = txn.open_table(RECORDS)?;
            let (mut next, mut taken) = (from, 0);
            for item in rows.range((topic.id, partition, from)..=(topic.id, partition, u64::MAX))? {
                if taken >= max {
                    break;
                }
                let (key, value) = item?;
                let last = key.value().2;
                let name = |offset| damaged(&batch_name(&topic.name, partition, offset, last));
                let batch = Batch::open(topic.id, partition, last, value.value())
                    .with_context(|| name(next))?;
                let wanted = batch.records().skip_while(|(offset, _)| *offset < from);
                for (offset, bytes) in wanted.take(max - taken) {
                    let record = Record::decode(bytes).ok().with_context(|| name(offset))?;
                    each(offset, record);
                    next = offset + 1;
                    taken += 1;
                }
            }
            Ok(next)
        })
    }
}

/// Most records a fetch makes room for up front; a larger one grows as it reads.
pub(super) const MAX_RESERVED: usize = 1 << 16;

impl EmbeddedLog {
    /// The offset of the first record of `topic`'s `partition` stamped at or after
    /// `time_ms`, as Kafka's offsets-for-times finds it; the partition's end when none is.
    pub fn offset_for_time(&self, topic: &TopicMeta, partition: u32, time_ms: i64) -> Result<u64> {
        let mut from = 0;
        loop {
            let page = self.fetch(topic, partition, from, 1000)?;
            if let Some((offset, _)) = page
                .records
                .iter()
                .find(|(_, record)| record.timestamp_ms >= time_ms)
            {
                return Ok(*offset);
            }
            if page.records.is_empty() {
                return Ok(page.next);
            }
            from = page.next;
        }
    }
}

/// What came of an append.
enum Appended {
    /// The records were written where it says.
    Written(Vec<(u32, u64)>),
    /// The request repeats the producer's last one, written where it says.
    Repeated(Vec<(u32, u64)>),
    /// The request skips a sequence number.
    OutOfOrder { expected: u64 },
}

/// A producer's last batch, as [`PRODUCERS`] keeps it.
pub(super) struct LastBatch {
    /// The sequence number expected next.
    pub(super) next: u64,
    /// When the batch was written.
    pub(super) at_ms: i64,
    /// Where its records went.
    placed: Vec<(u32, u64)>,
}

impl LastBatch {
    fn seal(&self, producer: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + 12 * self.placed.len());
        bytes.extend_from_slice(&self.next.to_le_bytes());
        bytes.extend_from_slice(&self.at_ms.to_le_bytes());
        for (partition, offset) in &self.placed {
            bytes.extend_from_slice(&partition.to_le_bytes());
            bytes.extend_from_slice(&offset.to_le_bytes());
        }
        frame::seal_doc("producer", producer, &bytes)
    }

    pub(super) fn open(producer: &str, stored: &[u8]) -> Result<LastBatch> {
        let bytes = frame::open_doc("producer", producer, stored)
            .filter(|b| b.len() >= 16 && (b.len() - 16) % 12 == 0)
            .with_context(|| damaged(&format!("the last batch of producer {producer}")))?;
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let placed = bytes[16..]
            .chunks_exact(12)
            .map(|c| {
                let partition = u32::from_le_bytes(c[..4].try_into().unwrap_or_default());
                (
                    partition,
                    u64::from_le_bytes(c[4..].try_into().unwrap_or_default()),
                )
            })
            .collect();
        Ok(LastBatch {
            next: word(0),
            at_ms: word(8) as i64,
            placed,
        })
    }
}

/// How a stored record is named in errors.
pub(super) fn record_name(topic: &str, partition: u32, offset: u64) -> String {
    format!("record {offset} of topic {topic} partition {partition}")
}

/// How the record at `offset` is named in errors when the batch it is stored in, up to
/// `last`, is damaged: what is lost with it.
pub(super) fn batch_name(topic: &str, partition: u32, offset: u64, last: u64) -> String {
    let name = record_name(topic, partition, offset);
    match last > offset {
        true => format!("{name} (in a batch with the records after it up to {last})"),
        false => name,
    }
}
