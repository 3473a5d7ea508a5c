//! Bringing a store of an older format up to this one: the first format stored values
//! without checksums, and opening it seals every record, state value and document.

use std::ops::Bound;

use anyhow::Result;
use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::frame;
use super::tables::{DEPLOYMENTS, LOG, STATE, StateRow, TOPICS};

/// Values rewritten per step, so a large store is not read into memory at once.
const CHUNK: usize = 10_000;

/// Seals every value of the first format, in `txn`.
pub fn seal_all(txn: &WriteTransaction) -> Result<()> {
    let mut log = txn.open_table(LOG)?;
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
        for ((topic, partition, offset), bytes) in chunk {
            let sealed = frame::seal_record(topic, partition, offset, &bytes);
            log.insert((topic, partition, offset), sealed.as_slice())?;
        }
    }
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
