//! Deletes old records from the front of each partition, by record age and partition
//! size, as Kafka's retention does. Offsets never move: the log start just advances.

use anyhow::Result;
use redb::ReadableTable;

use super::batch::Batch;
use super::records::LastBatch;
use super::store::EmbeddedLog;
use super::tables::{PARTITIONS, PRODUCERS, RECORDS};

/// Records deleted by one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Records deleted.
    pub records: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// How long a producer's last batch is kept to answer its repeats.
const PRODUCER_EXPIRY_MS: i64 = 24 * 60 * 60 * 1000;

/// Records after which one pass stops deleting from a partition, so a pass never holds
/// the writer long.
const MAX_DELETES_PER_PASS: u64 = 50_000;

impl EmbeddedLog {
    /// Applies every topic's retention as of `now_ms`.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        for topic in self.topics() {
            if topic.retention_ms.is_none() && topic.retention_bytes.is_none() {
                continue;
            }
            let cutoff = topic
                .retention_ms
                .map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
            let deleted =
                self.guard(&format!("applying the retention of {}", topic.name), |db| {
                    let mut deleted = RetentionReport::default();
                    let txn = db.begin_write()?;
                    {
                        let mut parts = txn.open_table(PARTITIONS)?;
                        let mut rows = txn.open_table(RECORDS)?;
                        for p in 0..topic.partitions {
                            let Some((mut start, end, mut bytes)) =
                                parts.get((topic.id, p))?.map(|v| v.value())
                            else {
                                continue;
                            };
                            let (mut doomed, mut records) = (Vec::new(), 0);
                            for item in rows.range((topic.id, p, start)..(topic.id, p, end))? {
                                let (key, value) = item?;
                                let size = value.value().len() as u64;
                                let too_big = topic.retention_bytes.is_some_and(|max| bytes > max);
                                let last = key.value().2;
                                // A batch goes by age when all its records are too old;
                                // a damaged one is kept, with everything after it, for
                                // `fnctl check` to find. By size, the oldest batches go,
                                // damaged or not.
                                let batch = Batch::open(topic.id, p, last, value.value());
                                let too_old = cutoff.is_some_and(|cutoff| {
                                    batch.is_some_and(|b| b.max_timestamp_ms < cutoff)
                                });
                                if !(too_big || too_old) || records >= MAX_DELETES_PER_PASS {
                                    break;
                                }
                                doomed.push(last);
                                bytes = bytes.saturating_sub(size);
                                deleted.bytes += size;
                                records += batch.map_or(last + 1 - start, |b| u64::from(b.count));
                                start = last + 1;
                            }
                            deleted.records += records;
                            for last in doomed {
                                rows.remove((topic.id, p, last))?;
                            }
                            parts.insert((topic.id, p), (start, end, bytes))?;
                        }
                    }
                    txn.commit()?;
                    Ok(deleted)
                })?;
            report.records += deleted.records;
            report.bytes += deleted.bytes;
        }
        self.forget_producers(now_ms.saturating_sub(PRODUCER_EXPIRY_MS))?;
        Ok(report)
    }

    /// Forgets the producers whose last batch is older than `before_ms`: a request of
    /// theirs sent again after that long is written again, as Kafka's producer ids expire.
    fn forget_producers(&self, before_ms: i64) -> Result<()> {
        self.guard("forgetting idle producers", |db| {
            let txn = db.begin_write()?;
            {
                let mut producers = txn.open_table(PRODUCERS)?;
                let idle: Vec<String> = producers
                    .iter()?
                    .filter_map(|item| {
                        let (id, stored) = item.ok()?;
                        let id = id.value().to_owned();
                        let last = LastBatch::open(&id, stored.value()).ok()?;
                        (last.at_ms < before_ms).then_some(id)
                    })
                    .collect();
                for id in idle {
                    producers.remove(id.as_str())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
    }
}
