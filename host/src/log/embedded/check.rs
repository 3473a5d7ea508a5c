//! `fnctl check`: a data directory's store read whole, offline, every record, state value,
//! document and component against its checksum and the pages against redb's own, with
//! what is damaged named; and salvage, which copies everything intact into a new data
//! directory a replica can start on.

use std::ops::Bound;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use redb::{Database, ReadableDatabase, ReadableTable, TableHandle, WriteTransaction};
use serde::Serialize;

use super::EmbeddedLog;
use super::batch::Batch;
use super::frame;
use super::journal::{self, Head};
use super::records::{batch_name, record_name};
use super::store::{LogConfig, catch_damage, upgrade};
use super::tables::{
    ARTIFACTS, CHECKPOINTS, DEPLOYMENTS, GAPS, JOURNAL, JOURNAL_HEADS, OFFSETS, PARTITIONS,
    RECORDS, REPLAYS, STATE, STATE_BYTES, STORE_FILE, STREAM_TIME, TIMER_KEYS, TIMERS, TOPICS,
    TopicMeta,
};
use crate::model::record::Record;
use crate::sandbox::sha256_hex;

/// What a check found.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Topics read.
    pub topics: usize,
    /// Records read intact.
    pub records: u64,
    /// State entries read intact.
    pub state_entries: u64,
    /// Rows of recent state changes read intact.
    pub journal_rows: u64,
    /// Deployment histories read intact.
    pub deployments: usize,
    /// Components read intact.
    pub components: usize,
    /// What is damaged, one line each.
    pub damaged: Vec<String>,
    /// Whether every page of the file passed redb's own checksums.
    pub pages_intact: bool,
}

impl CheckReport {
    /// Whether nothing is damaged.
    pub fn intact(&self) -> bool {
        self.damaged.is_empty() && self.pages_intact
    }
}

/// Entries read per step, so that a damaged page costs the entries of one step at most.
const STEP: usize = 1000;

/// Batches of records read per step (about a megabyte), as [`STEP`] for entries.
const BATCH_STEP: usize = 64;

/// Checks the store of the data directory `data_dir`, which no replica may be using. With
/// `salvage`, copies every intact entry into a new data directory there.
pub fn check(data_dir: &Path, salvage: Option<&Path>) -> Result<CheckReport> {
    let dir = Dir::open_ambient_dir(data_dir, ambient_authority())
        .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
    if dir.metadata(STORE_FILE).is_err() {
        bail!("{} holds no store {STORE_FILE}", data_dir.display());
    }
    // No replica may write the store while it is read; a replica holds its lock.
    let lock = dir.open(STORE_FILE).context("opening the store")?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockShared).is_err() {
        bail!(
            "a replica is using {}: stop it before checking",
            data_dir.display()
        );
    }
    // The check reads a copy: opening a store recovers it from an unclean stop, and a
    // check must not change what it checks.
    let scratch = tempfile::tempdir().context("making a scratch directory")?;
    let scratch_dir = Dir::open_ambient_dir(scratch.path(), ambient_authority())?;
    dir.copy(STORE_FILE, &scratch_dir, STORE_FILE)
        .with_context(|| format!("copying the store of {} to check it", data_dir.display()))?;
    drop(lock);
    let copy = scratch.path().join(STORE_FILE);
    let mut db = match Database::create(&copy) {
        Ok(db) => db,
        Err(err) => {
            return Ok(CheckReport {
                damaged: vec![format!(
                    "the whole store: it cannot be opened ({err}), so nothing in it can be read or salvaged"
                )],
                ..CheckReport::default()
            });
        }
    };
    // A store of an older format is read as this one reads it: its copy is brought up
    // to this format first.
    let upgraded = catch_damage("bringing the store up to this format", || {
        let read = db.begin_read()?;
        if read.list_tables()?.any(|t| t.name() == RECORDS.name()) {
            return Ok(());
        }
        drop(read);
        let txn = db.begin_write()?;
        upgrade(&txn)?;
        txn.commit()?;
        Ok(())
    });
    if let Err(err) = upgraded {
        return Ok(CheckReport {
            damaged: vec![format!(
                "the whole store: it cannot be read as this format ({err:#}), so nothing in it can be read or salvaged"
            )],
            ..CheckReport::default()
        });
    }
    let target = match salvage {
        Some(path) => Some(open_salvage(path)?),
        None => None,
    };
    let mut report = CheckReport::default();
    {
        let read = db.begin_read()?;
        let txn = match &target {
            Some(log) => Some(log.begin_salvage()?),
            None => None,
        };
        walk(&read, txn.as_ref(), &mut report)?;
        if let Some(txn) = txn {
            txn.commit().context("writing the salvaged store")?;
        }
    }
    report.pages_intact = matches!(
        catch_damage("checking the pages", || Ok(db.check_integrity()?)),
        Ok(true)
    );
    if !report.pages_intact {
        report
            .damaged
            .push("pages of the store fail their checksums".to_owned());
    }
    Ok(report)
}

fn open_salvage(path: &Path) -> Result<EmbeddedLog> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("creating the salvage directory {}", path.display()))?;
    let dir = Dir::open_ambient_dir(path, ambient_authority())?;
    if dir.exists(STORE_FILE) {
        bail!(
            "{} holds a store already: salvage into a new directory",
            path.display()
        );
    }
    EmbeddedLog::open(&dir, LogConfig::default())
}

impl EmbeddedLog {
    fn begin_salvage(&self) -> Result<WriteTransaction> {
        self.guard(
            "starting the salvage",
            |db: &Database| Ok(db.begin_write()?),
        )
    }
}

fn walk(
    read: &redb::ReadTransaction,
    to: Option<&WriteTransaction>,
    report: &mut CheckReport,
) -> Result<()> {
    let topics = read_topics(read, to, report)?;
    report.topics = topics.len();
    for topic in &topics {
        records(read, to, topic, report)?;
    }
    state(read, to, report)?;
    journal(read, to, report)?;
    documents(read, to, report)?;
    if let Some(to) = to {
        copy_plain(read, to)?;
    }
    Ok(())
}

fn read_topics(
    read: &redb::ReadTransaction,
    to: Option<&WriteTransaction>,
    report: &mut CheckReport,
) -> Result<Vec<TopicMeta>> {
    let mut topics = Vec::new();
    let table = read.open_table(TOPICS)?;
    let all = catch_damage("reading the topics", || {
        Ok(table
            .iter()?
            .map(|item| item.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
            .collect::<Result<Vec<_>, _>>()?)
    });
    let all = match all {
        Ok(all) => all,
        Err(err) => {
            report.damaged.push(format!("{err:#}"));
            return Ok(topics);
        }
    };
    for (name, stored) in all {
        match frame::open_doc("topic", &name, &stored)
            .and_then(|doc| serde_json::from_slice::<TopicMeta>(doc).ok())
        {
            Some(meta) => {
                if let Some(to) = to {
                    to.open_table(TOPICS)?
                        .insert(name.as_str(), stored.as_slice())?;
                }
                topics.push(meta);
            }
            None => report.damaged.push(format!(
                "the settings of topic {name} (its records cannot be read without them)"
            )),
        }
    }
    Ok(topics)
}

/// Every record of `topic`, a step at a time, past damaged ones.
fn records(
    read: &redb::ReadTransaction,
    to: Option<&WriteTransaction>,
    topic: &TopicMeta,
    report: &mut CheckReport,
) -> Result<()> {
    let rows = read.open_table(RECORDS)?;
    let parts = read.open_table(PARTITIONS)?;
    let gaps = read.open_table(GAPS)?;
    for p in 0..topic.partitions {
        let extent = catch_damage("reading a partition's extent", || {
            Ok(parts.get((topic.id, p))?.map(|v| v.value()))
        });
        let Ok(Some((start, end, _))) = extent else {
            report
                .damaged
                .push(format!("the extent of topic {} partition {p}", topic.name));
            continue;
        };
        let mut next = start;
        let mut kept_bytes = 0;
        // Offsets with no record: left out by an earlier salvage, or lost.
        let missing = |from: u64, to_before: u64, report: &mut CheckReport| -> Result<()> {
            for offset in from..to_before {
                let known = catch_damage("reading the gaps", || {
                    Ok(gaps.get((topic.id, p, offset))?.is_some())
                })
                .unwrap_or(false);
                if known {
                    if let Some(to) = to {
                        to.open_table(GAPS)?.insert((topic.id, p, offset), ())?;
                    }
                } else {
                    report.damaged.push(format!(
                        "{} is missing",
                        record_name(&topic.name, p, offset)
                    ));
                }
            }
            Ok(())
        };
        while next < end {
            let step = |rows_at_most: usize| {
                catch_damage("reading records", || {
                    let mut found = Vec::new();
                    for item in rows
                        .range((topic.id, p, next)..(topic.id, p, end))?
                        .take(rows_at_most)
                    {
                        let (key, value) = item?;
                        found.push((key.value().2, value.value().to_vec()));
                    }
                    Ok(found)
                })
            };
            // A step that fails is read again a batch at a time, so that only the
            // offsets of the batch that cannot be read are lost.
            let found = match step(BATCH_STEP).or_else(|_| step(1)) {
                Ok(found) => found,
                Err(_) => {
                    report.damaged.push(format!(
                        "{} (a page of the store cannot be read there)",
                        record_name(&topic.name, p, next)
                    ));
                    left_out(to, topic.id, p, next..next + 1)?;
                    next += 1;
                    continue;
                }
            };
            if found.is_empty() {
                missing(next, end, report)?;
                break;
            }
            for (last, stored) in found {
                let intact = Batch::open(topic.id, p, last, &stored).filter(|batch| {
                    batch.base >= next
                        && batch
                            .records()
                            .all(|(_, bytes)| Record::decode(bytes).is_ok())
                });
                let Some(batch) = intact else {
                    // Where a damaged batch starts cannot be told: all the offsets since
                    // the last intact one are lost.
                    report.damaged.push(batch_name(&topic.name, p, next, last));
                    left_out(to, topic.id, p, next..last + 1)?;
                    next = last + 1;
                    continue;
                };
                missing(next, batch.base, report)?;
                next = last + 1;
                report.records += u64::from(batch.count);
                kept_bytes += stored.len() as u64;
                if let Some(to) = to {
                    to.open_table(RECORDS)?
                        .insert((topic.id, p, last), stored.as_slice())?;
                }
            }
        }
        if let Some(to) = to {
            to.open_table(PARTITIONS)?
                .insert((topic.id, p), (start, end, kept_bytes))?;
        }
    }
    Ok(())
}

/// Notes in the salvaged store that the records at `offsets` were left out.
fn left_out(
    to: Option<&WriteTransaction>,
    topic: u32,
    partition: u32,
    offsets: std::ops::Range<u64>,
) -> Result<()> {
    if let Some(to) = to {
        let mut gaps = to.open_table(GAPS)?;
        for offset in offsets {
            gaps.insert((topic, partition, offset), ())?;
        }
    }
    Ok(())
}

/// Every state entry, a step at a time, past damaged ones.
fn state(
    read: &redb::ReadTransaction,
    to: Option<&WriteTransaction>,
    report: &mut CheckReport,
) -> Result<()> {
    let table = read.open_table(STATE)?;
    let mut after: Option<(String, u32, Vec<u8>)> = None;
    loop {
        let step = catch_damage("reading state", || {
            let range = match &after {
                Some((f, p, k)) => table.range::<(&str, u32, &[u8])>((
                    Bound::Excluded((f.as_str(), *p, k.as_slice())),
                    Bound::Unbounded,
                ))?,
                None => table.range::<(&str, u32, &[u8])>(..)?,
            };
            let mut found = Vec::new();
            for item in range.take(STEP) {
                let (key, value) = item?;
                let (f, p, k) = key.value();
                found.push(((f.to_owned(), p, k.to_vec()), value.value().to_vec()));
            }
            Ok(found)
        });
        let found = match step {
            Ok(found) => found,
            Err(err) => {
                report.damaged.push(format!(
                    "state after {}: {err:#}",
                    after
                        .as_ref()
                        .map_or("the start".to_owned(), |(f, p, k)| format!(
                            "function {f} partition {p} key {:?}",
                            String::from_utf8_lossy(k)
                        ))
                ));
                return Ok(());
            }
        };
        let Some((last, _)) = found.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for ((function, partition, key), stored) in found {
            match frame::open_state(&function, partition, &key, &stored) {
                Some(value) => {
                    report.state_entries += 1;
                    if let Some(to) = to {
                        to.open_table(STATE)?.insert(
                            (function.as_str(), partition, key.as_slice()),
                            stored.as_slice(),
                        )?;
                        let mut sizes = to.open_table(STATE_BYTES)?;
                        let held = sizes
                            .get((function.as_str(), partition))?
                            .map_or(0, |v| v.value());
                        sizes.insert(
                            (function.as_str(), partition),
                            held + (key.len() + value.len()) as u64,
                        )?;
                    }
                }
                None => report.damaged.push(format!(
                    "the state of function {function} partition {partition} under key {:?}",
                    String::from_utf8_lossy(&key)
                )),
            }
        }
    }
}

/// Every partition's journal of recent state changes, row by row; a salvage folds the
/// intact rows into the state it copied, in order.
fn journal(
    read: &redb::ReadTransaction,
    to: Option<&WriteTransaction>,
    report: &mut CheckReport,
) -> Result<()> {
    let heads = catch_damage("reading the state journal", || {
        Ok(read
            .open_table(JOURNAL_HEADS)?
            .iter()?
            .map(|item| item.map(|(k, v)| (k.value().0.to_owned(), k.value().1, v.value())))
            .collect::<Result<Vec<_>, _>>()?)
    });
    let heads = match heads {
        Ok(heads) => heads,
        Err(err) => {
            report.damaged.push(format!("{err:#}"));
            return Ok(());
        }
    };
    let rows = read.open_table(JOURNAL)?;
    for (function, partition, head) in heads {
        let head = Head::from_row(head);
        for seq in head.first..head.next {
            let changes = catch_damage("reading the state journal", || {
                Ok(rows
                    .get((function.as_str(), partition, seq))?
                    .and_then(|stored| {
                        journal::open_row(&function, partition, seq, stored.value())
                    }))
            });
            let Ok(Some(changes)) = changes else {
                report.damaged.push(format!(
                    "the state journal of function {function} partition {partition} at row {seq}"
                ));
                continue;
            };
            report.journal_rows += 1;
            if let Some(to) = to {
                fold_into(to, &function, partition, &changes)?;
            }
        }
    }
    Ok(())
}

/// Applies `changes` to the salvaged state of `function`'s `partition`, and its size.
fn fold_into(
    to: &WriteTransaction,
    function: &str,
    partition: u32,
    changes: &journal::Changes,
) -> Result<()> {
    let mut state = to.open_table(STATE)?;
    let mut sizes = to.open_table(STATE_BYTES)?;
    let mut held = sizes.get((function, partition))?.map_or(0, |v| v.value());
    for (key, value) in changes {
        let old = match value {
            Some(value) => {
                held += (key.len() + value.len()) as u64;
                let sealed = frame::seal_state(function, partition, key, value);
                state.insert((function, partition, key.as_slice()), sealed.as_slice())?
            }
            None => state.remove((function, partition, key.as_slice()))?,
        };
        if let Some(old) = old {
            let old = old.value().len().saturating_sub(frame::SEAL_BYTES);
            held = held.saturating_sub((key.len() + old) as u64);
        }
    }
    sizes.insert((function, partition), held)?;
    Ok(())
}

/// Deployment histories and components.
fn documents(
    read: &redb::ReadTransaction,
    to: Option<&WriteTransaction>,
    report: &mut CheckReport,
) -> Result<()> {
    let deployments = read.open_table(DEPLOYMENTS)?;
    let all = catch_damage("reading the deployments", || {
        Ok(deployments
            .iter()?
            .map(|item| item.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
            .collect::<Result<Vec<_>, _>>()?)
    });
    match all {
        Ok(all) => {
            for (name, stored) in all {
                if frame::open_doc("deployment", &name, &stored).is_none() {
                    report
                        .damaged
                        .push(format!("the deployment history of {name}"));
                    continue;
                }
                report.deployments += 1;
                if let Some(to) = to {
                    to.open_table(DEPLOYMENTS)?
                        .insert(name.as_str(), stored.as_slice())?;
                }
            }
        }
        Err(err) => report.damaged.push(format!("{err:#}")),
    }
    let artifacts = read.open_table(ARTIFACTS)?;
    let names = catch_damage("reading the components", || {
        Ok(artifacts
            .iter()?
            .map(|item| item.map(|(k, _)| k.value().to_owned()))
            .collect::<Result<Vec<_>, _>>()?)
    });
    let names = match names {
        Ok(names) => names,
        Err(err) => {
            report.damaged.push(format!("{err:#}"));
            return Ok(());
        }
    };
    for sha256 in names {
        let bytes = catch_damage("reading a component", || {
            Ok(artifacts.get(sha256.as_str())?.map(|v| v.value().to_vec()))
        });
        match bytes {
            Ok(Some(bytes)) if sha256_hex(&bytes) == sha256 => {
                report.components += 1;
                if let Some(to) = to {
                    to.open_table(ARTIFACTS)?
                        .insert(sha256.as_str(), bytes.as_slice())?;
                }
            }
            _ => report.damaged.push(format!("component {sha256}")),
        }
    }
    Ok(())
}

/// Copies the tables of plain numbers (offsets, stream times, timers, checkpoints,
/// replays) as they read.
fn copy_plain(read: &redb::ReadTransaction, to: &WriteTransaction) -> Result<()> {
    copy_table(read, to, "offsets", OFFSETS)?;
    copy_table(read, to, "stream times", STREAM_TIME)?;
    copy_table(read, to, "timers", TIMERS)?;
    copy_table(read, to, "timers", TIMER_KEYS)?;
    copy_table(read, to, "checkpoints", CHECKPOINTS)?;
    copy_table(read, to, "replays", REPLAYS)
}

/// Copies `table` as it reads.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &redb::ReadTransaction,
    to: &WriteTransaction,
    what: &str,
    table: redb::TableDefinition<K, V>,
) -> Result<()> {
    catch_damage(&format!("copying {what}"), || {
        let mut out = to.open_table(table)?;
        for item in read.open_table(table)?.iter()? {
            let (k, v) = item?;
            out.insert(k.value(), v.value())?;
        }
        Ok(())
    })
}
