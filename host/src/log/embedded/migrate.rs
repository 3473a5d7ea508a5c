//! Bringing a store of an older format up to this one: the first format stored values
//! without checksums, and opening it seals every state value and document; up to the
//! third, records were stored one per row, and opening such a store moves them into
//! batches.

use std::collections::BTreeMap;
use std::ops::Bound;

use anyhow::Result;
use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::batch::{Builder, Rows};
use super::frame;
use super::tables::{DEPLOYMENTS, LOG, PARTITIONS, RECORDS, STATE, StateRow, TOPICS};
use crate::model::record::Record;

/// Values rewritten per step, so a large store is not read into memory at once.
const CHUNK: usize = 10_000;

/// Seals every state value and document of the first format, in `txn`; its records are
/// sealed as [`batch_records`] moves them.
pub fn seal_all(txn: &WriteTransaction) -> Result<()> {
    let mut state = txn.open_table(STATE)?;
    let mut after: Option<(String, u32, Vec<u8>)> = None;
    loop {
        let chunk: Vec<StateRow> = {
            let range = match &after {
                Some((f, p, k)) => state.range::<(&str, u32, &[u8])>((
                    Bound::Excluded((f.as_str(), *p, k.as_slice())),
                    Bound::Unbounded,
                ))?,
                None => state.range::<(&str, u32, &[u8])>(..)?,
            };
            range
                .take(CHUNK)
                .map(|item| {
                    item.map(|(k, v)| {
                        let (f, p, key) = k.value();
                        ((f.to_owned(), p, key.to_vec()), v.value().to_vec())
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let Some((last, _)) = chunk.last() else { break };
        after = Some(last.clone());
        for ((function, partition, key), value) in chunk {
            let sealed = frame::seal_state(&function, partition, &key, &value);
            state.insert(
                (function.as_str(), partition, key.as_slice()),
                sealed.as_slice(),
            )?;
        }
    }
    for table in [TOPICS, DEPLOYMENTS] {
        let mut docs = txn.open_table(table)?;
        let all: Vec<(String, Vec<u8>)> = docs
            .iter()?
            .map(|item| item.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        let kind = if table.name() == TOPICS.name() {
            "topic"
        } else {
            "deployment"
        };
        for (name, doc) in all {
            let sealed = frame::seal_doc(kind, &name, &doc);
            docs.insert(name.as_str(), sealed.as_slice())?;
        }
    }
    Ok(())
}

/// Moves every record of the table of one record per row into batches, in `txn`: the
/// records of a partition at consecutive offsets go into one batch until it is full. The
/// rows are `sealed` from format 2 on. A damaged row is moved as it is, where it still
/// fails its checksum, for reads and `fnctl check` to name.
pub fn batch_records(txn: &WriteTransaction, sealed: bool) -> Result<()> {
    let log = txn.open_table(LOG)?;
    let mut rows = txn.open_table(RECORDS)?;
    let mut bytes: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut open: Option<((u32, u32), Builder)> = None;
    let mut after: Option<(u32, u32, u64)> = None;
    loop {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let chunk: Vec<((u32, u32, u64), Vec<u8>)> = log
            .range::<(u32, u32, u64)>((lower, Bound::Unbounded))?
            .take(CHUNK)
            .map(|item| item.map(|(k, v)| (k.value(), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = chunk.last() else { break };
        after = Some(*last);
        for ((topic, partition, offset), stored) in chunk {
            let encoded = match sealed {
                true => frame::open_record(topic, partition, offset, &stored),
                false => Some(stored.as_slice()),
            };
            let record = encoded.and_then(|bytes| Record::decode(bytes).ok());
            let continues = open.as_ref().is_some_and(|(at, batch)| {
                *at == (topic, partition) && batch.next_offset() == offset && !batch.is_full()
            });
            if !continues && let Some((at, batch)) = open.take() {
                put(&mut rows, &mut bytes, at, batch)?;
            }
            let Some(record) = record else {
                rows.insert((topic, partition, offset), stored.as_slice())?;
                *bytes.entry((topic, partition)).or_default() += stored.len() as u64;
                continue;
            };
            open.get_or_insert_with(|| ((topic, partition), Builder::new(offset)))
                .1
                .push(&record);
        }
    }
    if let Some((at, batch)) = open {
        put(&mut rows, &mut bytes, at, batch)?;
    }
    let mut extents = txn.open_table(PARTITIONS)?;
    let partitions: Vec<(u32, u32)> = extents
        .iter()?
        .map(|item| item.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for at in partitions {
        let (start, end, _) = extents.get(at)?.map(|v| v.value()).unwrap_or_default();
        let bytes = bytes.get(&at).copied().unwrap_or(0);
        extents.insert(at, (start, end, bytes))?;
    }
    drop((log, rows));
    txn.delete_table(LOG)?;
    Ok(())
}

/// Writes `batch` as a row of partition `at`, and counts its bytes.
fn put(
    rows: &mut Rows<'_>,
    bytes: &mut BTreeMap<(u32, u32), u64>,
    (topic, partition): (u32, u32),
    batch: Builder,
) -> Result<()> {
    let (_, written) = batch.write(rows, topic, partition)?;
    *bytes.entry((topic, partition)).or_default() += written;
    Ok(())
}
