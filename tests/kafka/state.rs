//! `fnctl state` on Kafka: with two replicas sharing a function's partitions, either one
//! answers for every key, asking the other for the partitions it runs; and a replica that
//! is restoring a partition's state from the changelog says so (503, with Retry-After)
//! rather than answer from a partial copy.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::Broker;
use crate::failover::owners;
use crate::scenarios::counts_in_state;
use crate::support::{Replica, guest, temp_dir, wait_for};

#[test]
fn either_of_two_replicas_answers_for_every_partition() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let a = Replica::start_on_kafka(&dir.path().join("a"), &broker.address, &[]);
    let b = Replica::start_on_kafka(&dir.path().join("b"), &broker.address, &[]);
    counts_in_state(&a);
    let both: BTreeSet<String> = [a.id(), b.id()].into_iter().collect();
    wait_for(
        Duration::from_secs(60),
        "both replicas to run partitions",
        || {
            let owners: BTreeSet<String> =
                owners(&a, "counter").into_iter().map(|(_, o)| o).collect();
            (owners == both).then_some(())
        },
    );
    for replica in [&a, &b] {
        for k in 0..10 {
            let key = format!("k{k}");
            let value = replica.ok(&["state", "get", "counter", &key]);
            assert_eq!(value.trim(), "3", "{key} asked of {}", replica.id());
        }
        let scan = replica.ok(&["state", "scan", "counter", "--prefix", "k"]);
        assert_eq!(scan.lines().count(), 11, "a header and ten keys: {scan}");
    }
}

#[test]
fn a_query_while_a_partition_restores_its_state_says_so() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let mut a = Replica::start_on_kafka(&dir.path().join("a"), &broker.address, &[]);
    a.ok(&["topics", "create", "events", "--partitions", "1"]);
    a.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "events", "--output", "out"],
    );
    // Enough distinct keys that their changelog takes a while to read back.
    let keys = 300_000;
    let lines: Vec<String> = (0..keys)
        .map(|i| serde_json::json!({"k": format!("key-{i:06}")}).to_string())
        .collect();
    a.produce("events", &lines, &["--key-field", "k"]);
    a.wait_drained("counter", Duration::from_secs(300));
    a.kill();

    let b = Replica::start_on_kafka(&dir.path().join("b"), &broker.address, &[]);
    let path = "/v1/deployments/counter/state?key=key-000001";
    let started = Instant::now();
    let mut answers: Vec<(u16, String)> = Vec::new();
    let value = wait_for(Duration::from_secs(180), "the state to be read", || {
        let (status, body) = b.http_get(path)?;
        let answer: Value = serde_json::from_str(&body).unwrap_or_default();
        let entries = answer["entries"].as_array().cloned().unwrap_or_default();
        if status == 200 && !entries.is_empty() {
            return Some(entries[0]["json"].clone());
        }
        answers.push((status, answer["error"].as_str().unwrap_or(&body).to_owned()));
        None
    });
    assert_eq!(value, 1, "the committed count");
    let restoring = answers
        .iter()
        .filter(|(status, said)| *status == 503 && said.contains("restoring"))
        .count();
    let wrong: Vec<&(u16, String)> = answers
        .iter()
        .filter(|(status, _)| *status != 503)
        .collect();
    eprintln!(
        "{} answers in {:?} before the state was read, {restoring} of them 'restoring'",
        answers.len(),
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "only 503s before the state is read: {wrong:?}"
    );
    assert!(
        restoring > 0,
        "a query during the restore said so: {answers:?}"
    );
}
