//! The embedded log's own tests: appends, commits and state across a reopen, retention,
//! and refused topics and records.

use std::collections::BTreeMap;

use super::*;
use crate::log::LogError;
use crate::model::effects::{Commit, Effects, Output};
use crate::model::record::Record;

fn open(dir: &tempfile::TempDir) -> EmbeddedLog {
    let root =
        cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).expect("dir");
    EmbeddedLog::open(&root, LogConfig::default()).expect("open")
}

fn record(ts: i64, value: &str) -> (Option<u32>, Record) {
    let record = Record {
        timestamp_ms: ts,
        key: None,
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    };
    (Some(0), record)
}

/// A commit of function f's `partition` at stream time 2.
fn commit_of(partition: u32, offsets: Vec<(String, u64)>, effects: &Effects) -> Commit<'_> {
    Commit {
        group: "f",
        partition,
        offsets,
        stream_time_ms: 2,
        effects,
        state_growth: None,
    }
}

/// Effects with one state write (`k` = `v`), one timer (`t` at 99) and one output to
/// `topic`.
fn one_of_each(topic: &str) -> Effects {
    let mut effects = Effects::default();
    effects.state.insert(b"k".to_vec(), Some(b"v".to_vec()));
    effects.timers.insert(b"t".to_vec(), Some(99));
    effects.outputs.push(Output {
        topic: topic.into(),
        fallback_partition: 0,
        record: record(2, "A").1,
    });
    effects
}

#[test]
fn appends_offsets_and_state_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let log = open(&dir);
        log.create_topic("in", 1, None, None).expect("topic");
        log.create_topic("out", 1, None, None).expect("topic");
        log.append("in", vec![record(1, "a"), record(2, "b")], None)
            .expect("append");
        let effects = one_of_each("out");
        log.commit(&[commit_of(0, vec![("in".into(), 1)], &effects)])
            .expect("commit");
    }
    let log = open(&dir);
    let input = log.require_topic("in").expect("topic kept");
    let fetched = log.fetch(&input, 0, 0, 10).expect("fetch");
    let values: Vec<&[u8]> = fetched
        .records
        .iter()
        .filter_map(|(_, r)| r.value.as_deref())
        .collect();
    assert_eq!(values, vec![&b"a"[..], b"b"]);
    assert_eq!(log.committed("f", &input, 0).expect("offsets"), Some(1));
    assert_eq!(log.stream_time("f", 0).expect("stream time"), 2);
    let state = log.partition_state("f", 0).expect("state");
    assert_eq!(state.get(b"k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(state.timer(b"t").expect("timer"), Some(99));
    assert!(
        log.partition_state("g", 0)
            .expect("state")
            .get(b"k")
            .expect("get")
            .is_none()
    );
    let out = log.require_topic("out").expect("topic");
    assert_eq!(log.fetch(&out, 0, 0, 10).expect("fetch").records.len(), 1);
}

#[test]
fn a_copy_of_a_commit_made_elsewhere_keeps_its_state_and_leaves_outputs_and_offsets_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    // The commit's outputs and input are Kafka's topics: none of them exists here.
    let effects = one_of_each("kafka-out");
    log.cache_commit(&[commit_of(3, vec![("kafka-in".into(), 7)], &effects)])
        .expect("a copy needs none of the commit's topics");
    let state = log.partition_state("f", 3).expect("state");
    assert_eq!(state.get(b"k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(state.timer(b"t").expect("timer"), Some(99));
    assert_eq!(log.stream_time("f", 3).expect("stream time"), 2);
    for topic in ["kafka-out", "kafka-in"] {
        assert!(log.require_topic(topic).is_err(), "{topic} was not created");
    }
    // The same commit as the log's own writes its output, and needs its topics.
    assert!(log.commit(&[commit_of(3, Vec::new(), &effects)]).is_err());
    log.create_topic("kafka-out", 1, None, None).expect("topic");
    log.commit(&[commit_of(3, Vec::new(), &effects)])
        .expect("commit");
    let out = log.require_topic("kafka-out").expect("topic");
    assert_eq!(log.fetch(&out, 0, 0, 10).expect("fetch").records.len(), 1);
}

#[test]
fn retention_deletes_from_the_front_by_age_and_by_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    log.create_topic("aged", 1, Some(1_000), None)
        .expect("topic");
    log.create_topic("sized", 1, None, Some(200))
        .expect("topic");
    // One batch per append: retention deletes whole batches.
    for i in 0..10 {
        log.append("aged", vec![record(i * 1_000, "x")], None)
            .expect("append");
        log.append("sized", vec![record(i, &"y".repeat(50))], None)
            .expect("append");
    }
    let report = log.apply_retention(9_500).expect("retention");
    assert!(report.records > 0);
    let aged = log.require_topic("aged").expect("topic");
    let extent = log.extents(&aged).expect("extents")[0];
    assert_eq!(
        (extent.start, extent.end),
        (9, 10),
        "records older than 1 s are gone"
    );
    let fetched = log.fetch(&aged, 0, 0, 100).expect("fetch");
    assert_eq!(
        fetched.records.first().map(|(o, _)| *o),
        Some(9),
        "offsets do not move"
    );
    let sized = log.require_topic("sized").expect("topic");
    let extent = log.extents(&sized).expect("extents")[0];
    assert!(extent.bytes <= 200, "{extent:?}");
    assert_eq!(extent.end, 10);
    assert!(extent.start > 0);
}

#[test]
fn a_batch_is_deleted_by_age_once_all_its_records_are_old() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    log.create_topic("aged", 1, Some(1_000), None)
        .expect("topic");
    log.append("aged", vec![record(0, "old"), record(9_000, "new")], None)
        .expect("append");
    log.append("aged", vec![record(10_000, "newer")], None)
        .expect("append");
    let aged = log.require_topic("aged").expect("topic");
    assert_eq!(log.apply_retention(9_500).expect("retention").records, 0);
    assert_eq!(log.extents(&aged).expect("extents")[0].start, 0);
    assert_eq!(log.apply_retention(10_500).expect("retention").records, 2);
    let extent = log.extents(&aged).expect("extents")[0];
    assert_eq!((extent.start, extent.end), (2, 3));
}

#[test]
fn records_committed_together_are_read_back_from_any_offset_in_pages_of_any_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    log.create_topic("out", 2, None, None).expect("topic");
    // Enough records for several batches, over both partitions.
    let mut effects = Effects::default();
    for i in 0..3_000u32 {
        effects.outputs.push(Output {
            topic: "out".into(),
            fallback_partition: i % 2,
            record: record(i64::from(i), &format!("{i:0100}")).1,
        });
    }
    log.commit(&[commit_of(0, Vec::new(), &effects)])
        .expect("commit");
    let out = log.require_topic("out").expect("topic");
    let extents = log.extents(&out).expect("extents");
    assert_eq!(
        extents.iter().map(|e| e.end).collect::<Vec<_>>(),
        vec![1_500, 1_500]
    );
    for partition in 0..2u32 {
        let value = |offset: u64| format!("{:0100}", offset * 2 + u64::from(partition));
        for (from, max) in [
            (0, 10_000),
            (0, 1),
            (777, 5),
            (1_499, 10),
            (1_500, 10),
            (3, 1_000),
        ] {
            let fetched = log.fetch(&out, partition, from, max).expect("fetch");
            let expected: Vec<(u64, String)> =
                (from..1_500).take(max).map(|o| (o, value(o))).collect();
            let read: Vec<(u64, String)> = fetched
                .records
                .iter()
                .map(|(o, r)| {
                    (
                        *o,
                        String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                            .into_owned(),
                    )
                })
                .collect();
            assert_eq!(
                read, expected,
                "partition {partition} from {from}, {max} at most"
            );
            assert_eq!(fetched.next, expected.last().map_or(from, |(o, _)| o + 1));
        }
    }
    drop(log);
    let report = super::check(dir.path(), None).expect("check");
    assert!(report.intact(), "{:?}", report.damaged);
    assert_eq!(report.records, 3_000);
}

/// The settings of topic `in` (id 1) as an older format stored them.
fn settings_of_in(partitions: u32) -> Vec<u8> {
    let meta = TopicMeta {
        name: "in".into(),
        id: 1,
        partitions,
        retention_ms: None,
        retention_bytes: None,
    };
    serde_json::to_vec(&meta).expect("json")
}

#[test]
fn a_store_of_one_record_per_row_moves_them_into_batches_and_keeps_a_damaged_one_damaged() {
    use redb::Database;

    use super::tables::{LOG, PARTITIONS, TOPICS};

    let dir = tempfile::tempdir().expect("temp dir");
    {
        // What format 3 wrote: one sealed record per row; record 3 of partition 0 has
        // a changed byte.
        let db = Database::create(dir.path().join(STORE_FILE)).expect("a store");
        let txn = db.begin_write().expect("write");
        {
            let json = settings_of_in(2);
            let sealed = super::frame::seal_doc("topic", "in", &json);
            txn.open_table(TOPICS)
                .expect("topics")
                .insert("in", sealed.as_slice())
                .expect("insert");
            let mut log = txn.open_table(LOG).expect("log");
            for (partition, count) in [(0u32, 6u64), (1, 2)] {
                for offset in 0..count {
                    let encoded = record(offset as i64, &format!("{partition}-{offset}"))
                        .1
                        .encode();
                    let mut sealed = super::frame::seal_record(1, partition, offset, &encoded);
                    if (partition, offset) == (0, 3) {
                        let last = sealed.len() - 1;
                        sealed[last] ^= 1;
                    }
                    log.insert((1, partition, offset), sealed.as_slice())
                        .expect("insert");
                }
                txn.open_table(PARTITIONS)
                    .expect("partitions")
                    .insert((1, partition), (0, count, 0))
                    .expect("insert");
            }
            txn.open_table(super::store::META)
                .expect("meta")
                .insert("format", 3)
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let log = open(&dir);
    let topic = log.require_topic("in").expect("the topic is read");
    let values = |partition: u32, from: u64, max: usize| -> Vec<String> {
        log.fetch(&topic, partition, from, max)
            .expect("read")
            .records
            .iter()
            .map(|(o, r)| {
                format!(
                    "{o}:{}",
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                )
            })
            .collect()
    };
    assert_eq!(values(0, 0, 3), vec!["0:0-0", "1:0-1", "2:0-2"]);
    let err = log
        .fetch(&topic, 0, 3, 10)
        .expect_err("record 3 is damaged");
    assert!(
        format!("{err:#}").contains("record 3 of topic in partition 0 is damaged"),
        "{err:#}"
    );
    assert_eq!(values(0, 4, 10), vec!["4:0-4", "5:0-5"]);
    assert_eq!(values(1, 0, 10), vec!["0:1-0", "1:1-1"]);
    let extents = log.extents(&topic).expect("extents");
    assert!(extents.iter().all(|e| e.bytes > 0), "{extents:?}");
    log.append("in", vec![record(9, "new")], None)
        .expect("append");
    assert_eq!(values(0, 6, 10), vec!["6:new"]);
    drop(log);
    let report = super::check(dir.path(), None).expect("check");
    assert_eq!(report.records, 8, "{:?}", report.damaged);
    assert_eq!(
        report.damaged,
        vec!["record 3 of topic in partition 0".to_owned()]
    );
}

#[test]
fn bad_topics_and_records_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    assert!(matches!(
        log.create_topic("no spaces", 1, None, None),
        Err(LogError::Invalid(_))
    ));
    assert!(matches!(
        log.create_topic("t", 0, None, None),
        Err(LogError::Invalid(_))
    ));
    log.create_topic("t", 2, None, None).expect("topic");
    assert!(matches!(
        log.create_topic("t", 2, None, None),
        Err(LogError::Exists(_))
    ));
    let big = Record {
        value: Some(vec![0; (1 << 20) + 1]),
        ..Record::default()
    };
    let err = log
        .append("t", vec![(None, big)], None)
        .expect_err("too big");
    assert!(err.to_string().contains("largest record"), "{err}");
    let t = log.require_topic("t").expect("topic");
    assert_eq!(
        log.extents(&t)
            .expect("extents")
            .iter()
            .map(|e| e.end)
            .sum::<u64>(),
        0
    );
}

#[test]
fn a_store_of_the_first_format_is_sealed_when_it_opens() {
    use redb::Database;

    use super::tables::{DEPLOYMENTS, LOG, PARTITIONS, STATE, TOPICS};

    let dir = tempfile::tempdir().expect("temp dir");
    {
        // What the first format wrote: values as they are, and no format mark.
        let db = Database::create(dir.path().join(STORE_FILE)).expect("a store");
        let txn = db.begin_write().expect("write");
        {
            let json = settings_of_in(1);
            txn.open_table(TOPICS)
                .expect("topics")
                .insert("in", json.as_slice())
                .expect("insert");
            txn.open_table(PARTITIONS)
                .expect("partitions")
                .insert((1, 0), (0, 1, 10))
                .expect("insert");
            let encoded = record(5, "old").1.encode();
            txn.open_table(LOG)
                .expect("log")
                .insert((1, 0, 0), encoded.as_slice())
                .expect("insert");
            txn.open_table(STATE)
                .expect("state")
                .insert(("f", 0, &b"k"[..]), &b"v"[..])
                .expect("insert");
            txn.open_table(DEPLOYMENTS)
                .expect("deployments")
                .insert("f", &b"{\"versions\":[],\"active\":false}"[..])
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let log = open(&dir);
    let topic = log.require_topic("in").expect("the topic is read");
    let fetched = log.fetch(&topic, 0, 0, 10).expect("the record is read");
    assert_eq!(fetched.records[0].1.value.as_deref(), Some(&b"old"[..]));
    let state = log.partition_state("f", 0).expect("state");
    assert_eq!(state.get(b"k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(log.deployments().expect("deployments").len(), 1);
    drop(log);
    let reopened = open(&dir);
    let topic = reopened.require_topic("in").expect("topic");
    assert_eq!(
        reopened
            .fetch(&topic, 0, 0, 10)
            .expect("read")
            .records
            .len(),
        1,
        "sealed once"
    );
}

#[test]
fn a_changed_record_or_state_value_is_an_error_naming_it() {
    use redb::ReadableTable as _;

    use super::tables::{RECORDS, STATE};

    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    log.create_topic("in", 1, None, None).expect("topic");
    // Two appends: a batch each.
    log.append("in", vec![record(1, "a")], None)
        .expect("append");
    log.append("in", vec![record(2, "b")], None)
        .expect("append");
    // Large enough to go to the state table at once, not to the journal in front of it.
    commit_state(&log, &[(b"k".to_vec(), Some(vec![b'v'; 2 << 20]))]);
    // Record 1 moves under offset 0, and the state value changes by one bit.
    log.guard("damaging the store", |db| {
        let txn = db.begin_write()?;
        {
            let mut records = txn.open_table(RECORDS)?;
            let moved = records.get((1, 0, 1))?.map(|v| v.value().to_vec());
            records.insert((1, 0, 0), moved.expect("record 1").as_slice())?;
            let mut state = txn.open_table(STATE)?;
            let mut value = state
                .get(("f", 0, &b"k"[..]))?
                .map(|v| v.value().to_vec())
                .expect("the value");
            let last = value.len() - 1;
            value[last] ^= 1;
            state.insert(("f", 0, &b"k"[..]), value.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    })
    .expect("damage");
    let topic = log.require_topic("in").expect("topic");
    let err = log.fetch(&topic, 0, 0, 10).expect_err("a damaged record");
    assert!(
        format!("{err:#}").contains("record 0 of topic in partition 0 is damaged"),
        "{err:#}"
    );
    assert_eq!(
        log.fetch(&topic, 0, 1, 10).expect("the rest").records[0]
            .1
            .value
            .as_deref(),
        Some(&b"b"[..])
    );
    let state = log.partition_state("f", 0).expect("state");
    let err = state.get(b"k").expect_err("a damaged value");
    assert!(
        format!("{err:#}").contains("under key \"k\" is damaged"),
        "{err:#}"
    );
    let err = state.scan(b"", None, 10).expect_err("a damaged value");
    assert!(format!("{err:#}").contains("damaged"), "{err:#}");
}

#[test]
fn a_producers_request_sent_again_is_written_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    log.create_topic("in", 2, None, None).expect("topic");
    let batch = |tag: &str| {
        vec![
            (None, record(1, &format!("{tag}-a")).1),
            (None, record(2, &format!("{tag}-b")).1),
        ]
    };
    let first = |sequence| {
        Some(crate::log::Idempotence {
            producer: "p-1",
            sequence,
        })
    };
    let placed = log.append("in", batch("0"), first(0)).expect("first");
    assert_eq!(
        log.append("in", batch("0"), first(0)).expect("again"),
        placed,
        "the same answer"
    );
    let next = log.append("in", batch("1"), first(1)).expect("next");
    assert_ne!(next, placed);
    let err = log.append("in", batch("3"), first(3)).expect_err("a gap");
    assert!(err.to_string().contains("where 2 was due"), "{err}");
    let other = Some(crate::log::Idempotence {
        producer: "p-2",
        sequence: 7,
    });
    log.append("in", batch("x"), other)
        .expect("another producer starts anywhere");
    let topic = log.require_topic("in").expect("topic");
    let held: usize = (0..2)
        .map(|p| log.fetch(&topic, p, 0, 100).expect("fetch").records.len())
        .sum();
    assert_eq!(held, 6, "three batches of two, none twice");
    drop(log);
    let log = open(&dir);
    assert_eq!(
        log.append("in", batch("1"), first(1))
            .expect("after a restart"),
        next
    );
}

/// A commit of `changes` to function f's partition 0, its growth left to the store to
/// count.
fn commit_state(log: &EmbeddedLog, changes: &[(Vec<u8>, Option<Vec<u8>>)]) {
    let mut effects = Effects::default();
    effects.state.extend(changes.iter().cloned());
    log.commit(&[commit_of(0, Vec::new(), &effects)])
        .expect("commit");
}

/// A commit of `changes` to function f's partition 0 written as a runner writes them,
/// through a view of the committed state that counts what they add.
fn commit_counted(log: &EmbeddedLog, changes: &[(Vec<u8>, Option<Vec<u8>>)]) {
    let mut view = crate::state::PartitionState::new(log.partition_state("f", 0).expect("state"));
    for (key, value) in changes {
        view.write(key.clone(), value.clone()).expect("write");
    }
    view.accept_current();
    log.commit(&[Commit {
        state_growth: Some(view.growth()),
        ..commit_of(0, Vec::new(), &view.accepted)
    }])
    .expect("commit");
}

/// Everything `log` serves of function f's partition 0 equals `model`: each key, a scan
/// in pages, the entry count and the bytes held.
fn assert_serves(log: &EmbeddedLog, model: &BTreeMap<Vec<u8>, Vec<u8>>, when: &str) {
    let state = log.partition_state("f", 0).expect("state");
    for key in (0..64u8).map(|k| vec![b'k', k]) {
        assert_eq!(
            state.get(&key).expect("get"),
            model.get(&key).cloned(),
            "{when}: {key:?}"
        );
    }
    let mut scanned = Vec::new();
    loop {
        let after = scanned.last().map(|(k, _): &(Vec<u8>, Vec<u8>)| k.clone());
        let page = state.scan(b"k", after.as_deref(), 7).expect("scan");
        let done = page.len() < 7;
        scanned.extend(page);
        if done {
            break;
        }
    }
    let expected: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
    assert_eq!(scanned, expected, "{when}: a scan");
    assert_eq!(
        log.state_len("f", 0).expect("len"),
        model.len() as u64,
        "{when}"
    );
    let bytes: usize = model.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(
        log.state_bytes("f", 0).expect("bytes"),
        bytes as u64,
        "{when}"
    );
    assert_eq!(state.held_bytes().expect("held"), bytes as u64, "{when}");
}

#[test]
fn state_read_through_its_journal_is_what_was_committed_before_and_after_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut seed: u64 = 0x5eed;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let log = open(&dir);
    let mut before = None;
    for round in 0..120 {
        // Mostly small commits, which go to the journal; now and then one large enough
        // to fold the journal into the state table.
        let large = next(10) == 0;
        let mut changes = Vec::new();
        for _ in 0..=next(6) {
            let key = vec![b'k', next(64) as u8];
            let value = (next(4) != 0).then(|| {
                let len = if large {
                    300_000
                } else {
                    1 + next(40) as usize
                };
                vec![b'a' + next(26) as u8; len]
            });
            changes.push((key, value));
        }
        if round == 60 {
            before = Some((log.partition_state("f", 0).expect("state"), model.clone()));
        }
        // Every other commit carries the growth its writer counted; the store counts
        // the others' itself.
        match round % 2 {
            0 => commit_state(&log, &changes),
            _ => commit_counted(&log, &changes),
        }
        for (key, value) in changes {
            match value {
                Some(value) => model.insert(key, value),
                None => model.remove(&key),
            };
        }
        assert_serves(&log, &model, &format!("after commit {round}"));
    }
    let (snapshot, then) = before.expect("a snapshot");
    for (key, value) in &then {
        assert_eq!(
            snapshot.get(key).expect("get").as_ref(),
            Some(value),
            "a snapshot stays as it was"
        );
    }
    assert_eq!(
        snapshot.scan(b"", None, 100).expect("scan").len(),
        then.len()
    );
    drop(snapshot);
    drop(log);
    let log = open(&dir);
    assert_serves(&log, &model, "after a reopen");
    log.clear_state("f", 0).expect("clear");
    assert_serves(&log, &BTreeMap::new(), "after dropping the state");
    commit_state(&log, &[(b"k1".to_vec(), Some(b"new".to_vec()))]);
    drop(log);
    let log = open(&dir);
    let only = BTreeMap::from([(b"k1".to_vec(), b"new".to_vec())]);
    assert_serves(&log, &only, "a row after the state was dropped, reopened");
}

#[test]
fn a_changed_journal_row_is_an_error_naming_it_and_check_salvages_the_rest() {
    use redb::ReadableTable as _;

    use super::tables::JOURNAL;

    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir);
    commit_state(&log, &[(b"k1".to_vec(), Some(b"one".to_vec()))]);
    commit_state(&log, &[(b"k2".to_vec(), Some(b"two".to_vec()))]);
    log.guard("damaging the store", |db| {
        let txn = db.begin_write()?;
        {
            let mut rows = txn.open_table(JOURNAL)?;
            let mut row = rows
                .get(("f", 0, 1))?
                .map(|v| v.value().to_vec())
                .expect("the second row");
            let last = row.len() - 1;
            row[last] ^= 1;
            rows.insert(("f", 0, 1), row.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    })
    .expect("damage");
    drop(log);
    let log = open(&dir);
    let err = log
        .partition_state("f", 0)
        .err()
        .expect("a damaged row is an error");
    assert!(
        format!("{err:#}")
            .contains("the state journal of function f partition 0 at row 1 is damaged"),
        "{err:#}"
    );
    let err = log
        .state_len("f", 0)
        .expect_err("counting reads the journal too");
    assert!(format!("{err:#}").contains("damaged"), "{err:#}");
    drop(log);
    let salvaged = tempfile::tempdir().expect("temp dir");
    let report = check(dir.path(), Some(&salvaged.path().join("data"))).expect("check");
    assert_eq!(report.journal_rows, 1);
    assert_eq!(
        report.damaged,
        vec!["the state journal of function f partition 0 at row 1".to_owned()]
    );
    let root = cap_std::fs::Dir::open_ambient_dir(
        salvaged.path().join("data"),
        cap_std::ambient_authority(),
    )
    .expect("dir");
    let log = EmbeddedLog::open(&root, LogConfig::default()).expect("the salvage opens");
    let state = log.partition_state("f", 0).expect("state");
    assert_eq!(state.get(b"k1").expect("get"), Some(b"one".to_vec()));
    assert_eq!(state.get(b"k2").expect("get"), None);
    assert_eq!(log.state_bytes("f", 0).expect("bytes"), 5);
}
