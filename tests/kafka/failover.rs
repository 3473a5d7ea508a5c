//! Replicas share a function's partitions through the consumer group; when one is killed
//! the other takes over within seconds, a replica started later picks up every deployment
//! and a share of the partitions, and the outputs, read with read_committed by Kafka's own
//! console consumer, hold every expected record exactly once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::Broker;
use crate::examples;
use crate::support::{Replica, counts_exactly_once, guest, must, temp_dir, wait_for};

const KEYS: usize = 20;

/// Counter input lines: JSON whose `k` field becomes the record key.
fn events(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| serde_json::json!({ "k": format!("k{:02}", i % KEYS), "i": i }).to_string())
        .collect()
}

/// (partition, owner) of every input partition of `function`.
pub fn owners(replica: &Replica, function: &str) -> Vec<(u64, String)> {
    let Some((_, body)) = replica.http_get(&format!("/v1/deployments/{function}")) else {
        return Vec::new();
    };
    let status: Value = serde_json::from_str(&body).unwrap_or_default();
    status["partitions"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .map(|p| {
                    (
                        p["partition"].as_u64().unwrap_or(0),
                        p["owner"].as_str().unwrap_or("-").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn committed(replica: &Replica, function: &str) -> u64 {
    let Some((_, body)) = replica.http_get(&format!("/v1/deployments/{function}")) else {
        return 0;
    };
    let status: Value = serde_json::from_str(&body).unwrap_or_default();
    status["partitions"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["committed"].as_u64()).sum())
        .unwrap_or(0)
}

#[test]
fn replicas_share_partitions_take_over_from_a_killed_one_and_count_exactly_once() {
    let dir = temp_dir();
    let data = examples::dataset();
    let reference = Replica::start(&dir.path().join("reference"));
    examples::set_up(&reference);
    examples::feed_payments(&reference, &data);
    let expected_alerts = examples::collect(&reference).alerts;
    assert!(!expected_alerts.is_empty());
    drop(reference);

    let broker = Broker::start(&dir.path().join("kafka"));
    let a = Replica::start_on_kafka(&dir.path().join("a"), &broker.address, &[]);
    let mut b = Replica::start_on_kafka(&dir.path().join("b"), &broker.address, &[]);
    let (a_id, b_id) = (a.id(), b.id());
    examples::set_up(&a);
    a.ok(&["topics", "create", "events", "--partitions", "4"]);
    let counter = guest("test-counter");
    a.deploy(
        &counter,
        "counter",
        &["--input", "events", "--output", "out", "--batch", "50"],
    );

    wait_for(
        Duration::from_secs(60),
        "both replicas to own counter partitions",
        || {
            let owners: BTreeSet<String> =
                owners(&a, "counter").into_iter().map(|(_, o)| o).collect();
            (owners.contains(&a_id) && owners.contains(&b_id)).then_some(())
        },
    );
    let status = a.ok(&["status", "counter"]);
    assert!(
        status.contains(&a_id) && status.contains(&b_id),
        "fnctl status shows both replicas:\n{status}"
    );

    let streamed = 40_000;
    // Kill one replica while records stream in, and see how soon the other owns
    // everything.
    let took_over = std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            for chunk in events(0..streamed).chunks(2000) {
                a.produce("events", chunk, &["--key-field", "k"]);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        examples::feed_payments(&a, &data);
        wait_for(Duration::from_secs(120), "progress before the kill", || {
            (committed(&a, "counter") >= streamed as u64 / 4).then_some(())
        });
        b.kill();
        let killed_at = Instant::now();
        let took_over = wait_for(
            Duration::from_secs(30),
            "the survivor to own every partition",
            || {
                let all_a = ["counter", "fraud-scorer"].iter().all(|f| {
                    let owners = owners(&a, f);
                    !owners.is_empty() && owners.iter().all(|(_, owner)| *owner == a_id)
                });
                all_a.then(|| killed_at.elapsed())
            },
        );
        producer.join().expect("producer");
        took_over
    });
    assert!(
        took_over < Duration::from_secs(10),
        "took over after {took_over:?}; the survivor's log:\n{}",
        a.log_text()
            .lines()
            .filter(|l| l.contains("partition") || l.contains("restor"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("takeover after SIGKILL: {took_over:?}");

    let c = Replica::start_on_kafka(&dir.path().join("c"), &broker.address, &[]);
    let c_id = c.id();
    let listed = wait_for(
        Duration::from_secs(30),
        "the new replica to know the deployments",
        || {
            let list = c.ok(&["list"]);
            (list.contains("counter") && list.contains("fraud-scorer")).then_some(list)
        },
    );
    assert!(listed.contains("trace-correlator"), "{listed}");
    wait_for(
        Duration::from_secs(60),
        "the new replica to own counter partitions",
        || {
            owners(&a, "counter")
                .iter()
                .any(|(_, owner)| *owner == c_id)
                .then_some(())
        },
    );

    // The last events come from Kafka's own console producer, keyed with "key:value".
    let tail: Vec<String> = (streamed..streamed + 400)
        .map(|i| format!("k{:02}:{i}", i % KEYS))
        .collect();
    broker.tool(
        "console-producer",
        &[
            "--topic",
            "events",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        &(tail.join("\n") + "\n"),
    );
    let total = streamed + tail.len();
    for function in ["counter", "fraud-scorer"] {
        a.wait_drained(function, Duration::from_secs(120));
    }

    // One more than expected, so that a record written twice shows; the consumer stops
    // once nothing has come for the timeout.
    let out = broker.tool(
        "console-consumer",
        &[
            "--topic",
            "out",
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            &(total + 1).to_string(),
            "--timeout-ms",
            "10000",
        ],
        "",
    );
    must(counts_exactly_once(out.lines(), KEYS, total));

    assert_eq!(
        a.sorted_values("fraud-alerts"),
        expected_alerts,
        "fraud alerts match a run on the embedded log"
    );
}
