//! `fnctl replay` on a running function: from a time with the state started over it
//! gives what a fresh function started at that time gives; from offsets with the state
//! kept it goes on counting as if the records came again; and a replica killed while it
//! replays loses and repeats nothing. `fnctl deploy --from-time` starts a new function at
//! a time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, counts_by_key, guest, temp_dir, wait_for};

/// Event time of the first record.
const T0: i64 = 1_767_225_600_000;

/// Deploys the counter `name` over `events`, writing to `to`, with further `deploy`
/// arguments.
fn counter(replica: &Replica, name: &str, to: &str, extra: &[&str]) {
    let config = format!("to={to}");
    let mut args = vec!["--input", "events", "--output", to, "--config", &config];
    args.extend_from_slice(extra);
    replica.deploy(&guest("test-counter"), name, &args);
}

/// `n` records keyed by six keys, a second apart from [`T0`].
fn produce(replica: &Replica, range: std::ops::Range<usize>) {
    let lines: Vec<String> = range
        .map(|i| {
            serde_json::json!({"k": format!("k{}", i % 6), "ts": T0 + 1000 * i as i64}).to_string()
        })
        .collect();
    replica.produce(
        "events",
        &lines,
        &["--key-field", "k", "--timestamp-field", "ts"],
    );
}

/// Each key's counts in `topic`, in the order they were written.
fn counts(replica: &Replica, topic: &str) -> BTreeMap<String, Vec<u64>> {
    counts_by_key(&replica.consume(topic))
}

/// The records of `events` per partition, as (offset, key), in offset order.
fn inputs(replica: &Replica) -> BTreeMap<u64, Vec<(u64, String)>> {
    let mut inputs: BTreeMap<u64, Vec<(u64, String)>> = BTreeMap::new();
    for record in replica.consume("events") {
        let partition = record["partition"].as_u64().expect("a partition");
        let offset = record["offset"].as_u64().expect("an offset");
        let key = record["key"].as_str().expect("a key").to_owned();
        inputs.entry(partition).or_default().push((offset, key));
    }
    inputs
}

/// A replica whose counter has counted 60 records on two partitions, and its counts.
fn counted_60(dir: &tempfile::TempDir) -> (Replica, BTreeMap<String, Vec<u64>>) {
    let replica = Replica::start(&dir.path().join("replica"));
    replica.ok(&["topics", "create", "events", "--partitions", "2"]);
    counter(&replica, "counter", "out", &[]);
    produce(&replica, 0..60);
    replica.wait_drained("counter", Duration::from_secs(60));
    let before = counts(&replica, "out");
    (replica, before)
}

fn version_of(said: &str) -> u64 {
    let deployment: Value = serde_json::from_str(said).expect("JSON");
    deployment["version"].as_u64().expect("a version")
}

#[test]
fn a_replay_from_a_time_with_the_state_started_over_is_a_fresh_run_from_that_time() {
    let dir = temp_dir();
    let (replica, before) = counted_60(&dir);

    let from = (T0 + 30_000).to_string();
    let said = replica.ok(&[
        "replay",
        "counter",
        "--from-time",
        &from,
        "--reset-state",
        "--format",
        "json",
    ]);
    assert_eq!(version_of(&said), 2, "a replay is a version of its own");
    replica.wait_drained("counter", Duration::from_secs(60));
    counter(
        &replica,
        "fresh",
        "fresh-out",
        &["--from-time", "2026-01-01T00:00:30Z"],
    );
    replica.wait_drained("fresh", Duration::from_secs(60));

    let after = counts(&replica, "out");
    let fresh = counts(&replica, "fresh-out");
    assert_eq!(fresh.values().map(Vec::len).sum::<usize>(), 30, "{fresh:?}");
    for (key, fresh) in &fresh {
        let replayed = &after[key][before[key].len()..];
        assert_eq!(
            replayed,
            fresh.as_slice(),
            "{key}: the replay counts as a fresh run"
        );
        assert_eq!(fresh.first(), Some(&1), "{key} starts over");
    }
}

#[test]
fn a_replay_from_offsets_with_the_state_kept_counts_on() {
    let dir = temp_dir();
    let (replica, before) = counted_60(&dir);

    replica.ok(&[
        "replay",
        "counter",
        "--from-offset",
        "events:0:10",
        "--from-offset",
        "events:1:5",
    ]);
    replica.wait_drained("counter", Duration::from_secs(60));
    // What continuing to count gives: each record from those offsets counted again, on
    // top of what the key had.
    let mut expected: BTreeMap<String, Vec<u64>> = before.clone();
    for (partition, records) in inputs(&replica) {
        let from = if partition == 0 { 10 } else { 5 };
        for (_, key) in records.iter().filter(|(offset, _)| *offset >= from) {
            let counts = expected.entry(key.clone()).or_default();
            counts.push(counts.last().copied().unwrap_or(0) + 1);
        }
    }
    assert_eq!(counts(&replica, "out"), expected);
    let missing = replica.fnctl(&["replay", "counter", "--from-offset", "nope:0:1"]);
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(said.contains("not an input of counter"), "{said}");
}

#[test]
fn a_replica_killed_while_it_replays_loses_and_repeats_nothing() {
    let dir = temp_dir();
    let data = dir.path().join("replica");
    let mut replica = Replica::start(&data);
    let port = replica.port().expect("a port");
    replica.ok(&["topics", "create", "events", "--partitions", "2"]);
    counter(&replica, "counter", "out", &["--batch", "20"]);
    let total = 30_000;
    produce(&replica, 0..total);
    replica.wait_drained("counter", Duration::from_secs(120));
    let before = counts(&replica, "out");

    replica.ok(&["replay", "counter", "--from", "earliest", "--reset-state"]);
    // Killed while it works through the replay, which status follows.
    let status = || -> Option<Value> {
        let (_, body) = replica.http_get("/v1/deployments/counter")?;
        serde_json::from_str(&body).ok()
    };
    let under_way = wait_for(
        Duration::from_secs(60),
        "the replay to be under way",
        || status().filter(|s| s["records_in"].as_u64() > Some(total as u64 + 500)),
    );
    replica.kill();
    let replayed = under_way["records_in"].as_u64().expect("records in") - total as u64;
    eprintln!("killed with about {replayed} of {total} records replayed");
    assert!(
        replayed < total as u64,
        "the kill came before the replay ended"
    );
    let progress = &under_way["replay"];
    let left = progress["left"].as_u64().expect("records left");
    // What it has not committed of what it read again is still left.
    assert!(
        (total as u64 - replayed..=total as u64).contains(&left),
        "{left} left: {progress}"
    );
    assert_eq!(progress["replay"]["reset_state"], true, "{progress}");
    let replica = Replica::start_at(&data, port);
    replica.wait_drained("counter", Duration::from_secs(120));
    let shown = replica.ok(&["status", "counter"]);
    assert!(
        shown.contains("replay from the earliest offsets (state started over)")
            && shown.contains(": done"),
        "{shown}"
    );

    let after = counts(&replica, "out");
    for (key, done) in &before {
        let replayed = &after[key][done.len()..];
        let expected: Vec<u64> = (1..=done.len() as u64).collect();
        assert_eq!(
            replayed,
            expected.as_slice(),
            "{key}: the replay once, from 1"
        );
    }
}
