//! `fnctl replay` on Kafka: the group's offsets move back and the state starts over in
//! one transaction, and a replica that takes the partitions over afterwards restores the
//! replayed state from the changelog (the dropped keys gone, the replay recorded as done,
//! so it is not carried out again) and counts on from there.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::broker::Broker;
use crate::support::{Replica, counts_by_key, guest, temp_dir};

/// Each key's counts in `out`, in the order they were written.
fn counts(replica: &Replica) -> BTreeMap<String, Vec<u64>> {
    counts_by_key(&replica.consume("out"))
}

fn produce(replica: &Replica, range: std::ops::Range<usize>) {
    let lines: Vec<String> = range
        .map(|i| serde_json::json!({"k": format!("k{}", i % 5)}).to_string())
        .collect();
    replica.produce("events", &lines, &["--key-field", "k"]);
}

#[test]
fn a_replay_on_kafka_starts_the_state_over_once_and_a_new_owner_counts_on_from_it() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let mut a = Replica::start_on_kafka(&dir.path().join("a"), &broker.address, &[]);
    a.ok(&["topics", "create", "events", "--partitions", "2"]);
    a.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "events", "--output", "out"],
    );
    produce(&a, 0..500);
    a.wait_drained("counter", Duration::from_secs(120));
    a.ok(&["replay", "counter", "--from", "earliest", "--reset-state"]);
    a.wait_drained("counter", Duration::from_secs(120));
    let shown = a.ok(&["status", "counter"]);
    assert!(
        shown.contains("(state started over)") && shown.contains(": done"),
        "{shown}"
    );
    let once: Vec<u64> = (1..=100).collect();
    for (key, counts) in counts(&a) {
        assert_eq!(counts, [once.clone(), once.clone()].concat(), "{key}");
    }

    // Another replica takes over from the changelog, and counts on from the replay.
    a.kill();
    let b = Replica::start_on_kafka(&dir.path().join("b"), &broker.address, &[]);
    produce(&b, 500..1000);
    b.wait_drained("counter", Duration::from_secs(180));
    let on: Vec<u64> = (101..=200).collect();
    for (key, counts) in counts(&b) {
        assert_eq!(
            counts,
            [once.clone(), once.clone(), on.clone()].concat(),
            "{key}"
        );
    }
}
