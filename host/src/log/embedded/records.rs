//! Records of the embedded log: durable appends (placed by partition, key or round
//! robin, as Kafka's producer does) and fetches by offset.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use redb::{ReadableDatabase, ReadableTable};

use super::frame;
use super::store::{EmbeddedLog, damaged};
use super::tables::TopicMeta;
use super::tables::{LOG, PARTITIONS};
use crate::log::{Fetched, LogError};
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
        Ok(self.write_records(&meta, records)?)
    }

    /// Writes records that passed the checks, in one transaction.
    fn write_records(
        &self,
        meta: &TopicMeta,
        records: Vec<(Option<u32>, Record)>,
    ) -> Result<Vec<(u32, u64)>> {
        let placed = self.guard(&format!("appending to {}", meta.name), |db| {
            let txn = db.begin_write()?;
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
                    let sealed = frame::seal_record(meta.id, p, offset, &record.encode());
                    log.insert((meta.id, p, offset), sealed.as_slice())?;
                    extent.1 += 1;
                    extent.2 += sealed.len() as u64;
                    placed.push((p, offset));
                }
                for (p, extent) in extents {
                    parts.insert((meta.id, p), extent)?;
                }
            }
            txn.commit()?;
            Ok(placed)
        })?;
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
        let what = format!("reading {} partition {partition}", topic.name);
        self.guard(&what, |db| {
            let txn = db.begin_read()?;
            let log = txn.open_table(LOG)?;
            let mut fetched = Fetched {
                records: Vec::new(),
                next: from,
            };
            for item in log.range((topic.id, partition, from)..(topic.id, partition, u64::MAX))? {
                let (key, value) = item?;
                let offset = key.value().2;
                let record = frame::open_record(topic.id, partition, offset, value.value())
                    .and_then(|bytes| Record::decode(bytes).ok())
                    .with_context(|| damaged(&record_name(&topic.name, partition, offset)))?;
                fetched.records.push((offset, record));
                fetched.next = offset + 1;
                if fetched.records.len() >= max {
                    break;
                }
            }
            Ok(fetched)
        })
    }
}

/// How a stored record is named in errors.
pub(super) fn record_name(topic: &str, partition: u32, offset: u64) -> String {
    format!("record {offset} of topic {topic} partition {partition}")
}
