//! Record batches, the rows the log keeps records in: records of one partition at
//! consecutive offsets, encoded one after another under one checksum, as Kafka keeps its
//! record batches. A row is keyed by its last offset, so the row that holds an offset is
//! the first at or after it. One row per batch rather than per record is what makes an
//! append or a commit of many records cheap.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use anyhow::Result;
use redb::{ReadableTable, Table};

use super::frame;
use crate::model::record::Record;

/// A batch is closed once its records take this many bytes (as Kafka's producer batches
/// are by default), so it holds at most this much and one more record. A damaged byte
/// costs the records of its batch.
pub const BATCH_BYTES: usize = 16 << 10;

/// Bytes in front of a batch's records: the seal, the base offset, the record count and
/// the largest timestamp.
const HEADER: usize = frame::SEAL_BYTES + 8 + 4 + 8;

/// Bytes in front of each record: its length.
const LENGTH: usize = 4;

/// A batch being written.
pub struct Builder {
    base: u64,
    count: u32,
    max_timestamp_ms: i64,
    framed: Vec<u8>,
}

impl Builder {
    /// An empty batch whose first record gets offset `base`.
    pub fn new(base: u64) -> Builder {
        Builder {
            base,
            count: 0,
            max_timestamp_ms: i64::MIN,
            framed: vec![0; HEADER],
        }
    }

    /// Adds `record` at the batch's next offset.
    pub fn push(&mut self, record: &Record) {
        if self.count == 0 {
            self.framed
                .reserve(BATCH_BYTES.min(record.encoded_len() * 64));
        }
        let at = self.framed.len();
        self.framed.extend_from_slice(&[0; LENGTH]);
        record.encode_into(&mut self.framed);
        let len = (self.framed.len() - at - LENGTH) as u32;
        self.framed[at..at + LENGTH].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(record.timestamp_ms);
    }

    /// The offset the next record gets.
    pub fn next_offset(&self) -> u64 {
        self.base + u64::from(self.count)
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the batch is to be closed.
    pub fn is_full(&self) -> bool {
        self.framed.len() >= BATCH_BYTES
    }

    /// The batch's last offset and its row, sealed for `topic`'s `partition`. The batch
    /// must hold a record.
    pub fn seal(mut self, topic: u32, partition: u32) -> (u64, Vec<u8>) {
        let last = self.next_offset() - 1;
        let mut header = &mut self.framed[frame::SEAL_BYTES..HEADER];
        for field in [
            &self.base.to_le_bytes()[..],
            &self.count.to_le_bytes(),
            &self.max_timestamp_ms.to_le_bytes(),
        ] {
            header[..field.len()].copy_from_slice(field);
            header = &mut header[field.len()..];
        }
        frame::seal_batch(topic, partition, last, &mut self.framed);
        (last, self.framed)
    }

    /// Writes the batch, sealed, as a row of `topic`'s `partition`; returns its last
    /// offset and the bytes of the row. The batch must hold a record.
    pub fn write(self, rows: &mut Rows<'_>, topic: u32, partition: u32) -> Result<(u64, u64)> {
        let (last, sealed) = self.seal(topic, partition);
        rows.insert((topic, partition, last), sealed.as_slice())?;
        Ok((last, sealed.len() as u64))
    }
}

/// A stored batch, opened.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Offset of its first record.
    pub base: u64,
    /// Records it holds.
    pub count: u32,
    /// The largest timestamp of its records.
    pub max_timestamp_ms: i64,
    records: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The batch stored as `topic`'s `partition` row `last`, if it is intact: sealed
    /// there, and whole.
    pub fn open(topic: u32, partition: u32, last: u64, stored: &'a [u8]) -> Option<Batch<'a>> {
        let sealed = frame::open_batch(topic, partition, last, stored)?;
        let (base, rest) = sealed.split_first_chunk::<8>()?;
        let (count, rest) = rest.split_first_chunk::<4>()?;
        let (max_timestamp_ms, records) = rest.split_first_chunk::<8>()?;
        let batch = Batch {
            base: u64::from_le_bytes(*base),
            count: u32::from_le_bytes(*count),
            max_timestamp_ms: i64::from_le_bytes(*max_timestamp_ms),
            records,
        };
        // Offsets stop short of the top of their range, so that the one after the last
        // is one too.
        let whole = batch.count > 0
            && last < u64::MAX - 1
            && batch.base.checked_add(u64::from(batch.count) - 1) == Some(last)
            && batch.encoded().count() == batch.count as usize
            && batch.encoded().map(<[u8]>::len).sum::<usize>() + LENGTH * batch.count as usize
                == records.len();
        whole.then_some(batch)
    }

    /// Each record's encoding, in offset order (records of a batch that did not open
    /// whole may be cut short).
    fn encoded(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let mut rest = self.records;
        std::iter::from_fn(move || {
            let (len, after) = rest.split_first_chunk::<LENGTH>()?;
            let len = u32::from_le_bytes(*len) as usize;
            let record = after.get(..len)?;
            rest = &after[len..];
            Some(record)
        })
    }

    /// Each record's offset and encoding ([`Record::decode`] reads it), in offset order.
    pub fn records(&self) -> impl Iterator<Item = (u64, &'a [u8])> + use<'a> {
        (self.base..).zip(self.encoded())
    }
}

/// The rows records are kept in: (topic id, partition, last offset) → batch.
pub type Rows<'t> = Table<'t, (u32, u32, u64), &'static [u8]>;

/// The extents of partitions: (topic id, partition) → (log start, next offset, bytes).
pub type Extents<'t> = Table<'t, (u32, u32), (u64, u64, u64)>;

/// Records appended in one write transaction: each partition's go into batches of about
/// [`BATCH_BYTES`], written as they fill and at the end, with the partitions' extents.
#[derive(Default)]
pub struct Appends {
    open: BTreeMap<(u32, u32), Appending>,
}

/// A partition being appended to.
struct Appending {
    /// Its extent as the written batches leave it.
    extent: (u64, u64, u64),
    batch: Builder,
}

impl Appends {
    /// Appends `record` to `topic`'s `partition`; returns its offset.
    pub fn push(
        &mut self,
        extents: &Extents<'_>,
        rows: &mut Rows<'_>,
        topic: u32,
        partition: u32,
        record: &Record,
    ) -> Result<u64> {
        let appending = match self.open.entry((topic, partition)) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let extent = extents
                    .get((topic, partition))?
                    .map(|v| v.value())
                    .unwrap_or_default();
                entry.insert(Appending {
                    extent,
                    batch: Builder::new(extent.1),
                })
            }
        };
        let offset = appending.batch.next_offset();
        appending.batch.push(record);
        if appending.batch.is_full() {
            let full = std::mem::replace(&mut appending.batch, Builder::new(offset + 1));
            write(rows, &mut appending.extent, topic, partition, full)?;
        }
        Ok(offset)
    }

    /// Writes the batches still open and the extents of every partition appended to.
    pub fn finish(self, extents: &mut Extents<'_>, rows: &mut Rows<'_>) -> Result<()> {
        for ((topic, partition), mut appending) in self.open {
            if !appending.batch.is_empty() {
                write(
                    rows,
                    &mut appending.extent,
                    topic,
                    partition,
                    appending.batch,
                )?;
            }
            extents.insert((topic, partition), appending.extent)?;
        }
        Ok(())
    }
}

/// Writes `batch` as a row of `topic`'s `partition` and counts it in the extent.
fn write(
    rows: &mut Rows<'_>,
    extent: &mut (u64, u64, u64),
    topic: u32,
    partition: u32,
    batch: Builder,
) -> Result<()> {
    let (last, bytes) = batch.write(rows, topic, partition)?;
    extent.1 = last + 1;
    extent.2 += bytes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64, bytes: usize) -> Record {
        Record {
            timestamp_ms: 100 - i,
            key: Some(i.to_le_bytes().to_vec()),
            value: Some(vec![b'v'; bytes]),
            headers: vec![("h".into(), vec![1])],
        }
    }

    #[test]
    fn a_batch_opens_only_whole_and_where_it_was_sealed() {
        let mut builder = Builder::new(7);
        for i in 0..3 {
            builder.push(&record(i, 10));
        }
        assert_eq!(builder.next_offset(), 10);
        let (last, sealed) = builder.seal(1, 2);
        assert_eq!(last, 9);
        let batch = Batch::open(1, 2, 9, &sealed).expect("intact");
        assert_eq!((batch.base, batch.count), (7, 3));
        assert_eq!(batch.max_timestamp_ms, 100);
        let read: Vec<(u64, Record)> = batch
            .records()
            .map(|(offset, bytes)| (offset, Record::decode(bytes).expect("a record")))
            .collect();
        let written: Vec<(u64, Record)> = (7..).zip((0..3).map(|i| record(i, 10))).collect();
        assert_eq!(read, written);
        for (topic, partition, last) in [(2, 2, 9), (1, 3, 9), (1, 2, 8), (1, 2, 10)] {
            assert!(
                Batch::open(topic, partition, last, &sealed).is_none(),
                "moved to {topic}/{partition}/{last}"
            );
        }
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x04;
            assert!(Batch::open(1, 2, 9, &flipped).is_none(), "byte {i}");
        }
        assert!(Batch::open(1, 2, 9, &sealed[..sealed.len() - 1]).is_none());
    }

    #[test]
    fn a_batch_whose_lengths_do_not_add_up_does_not_open_though_its_seal_is_right() {
        let mut builder = Builder::new(0);
        builder.push(&record(0, 10));
        builder.push(&record(1, 10));
        let (_, mut sealed) = builder.seal(1, 0);
        // The count says three records where two are stored, sealed again as if whole.
        sealed[frame::SEAL_BYTES + 8] = 3;
        frame::seal_batch(1, 0, 2, &mut sealed);
        assert!(Batch::open(1, 0, 2, &sealed).is_none());
        // And an empty batch.
        let mut empty = Builder::new(5).framed;
        frame::seal_batch(1, 0, 4, &mut empty);
        assert!(Batch::open(1, 0, 4, &empty).is_none());
    }

    #[test]
    fn a_batch_closes_once_it_holds_its_bytes_and_a_large_record_has_one_alone() {
        let mut small = Builder::new(0);
        let mut pushed = 0;
        while !small.is_full() {
            small.push(&record(pushed, 100));
            pushed += 1;
        }
        let per_record = (BATCH_BYTES / pushed as usize) as f64;
        assert!(
            (100.0..200.0).contains(&per_record),
            "{pushed} records of 100 bytes"
        );
        let mut large = Builder::new(0);
        large.push(&record(0, BATCH_BYTES));
        assert!(large.is_full());
    }
}
