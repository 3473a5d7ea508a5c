//! Scenarios that both test binaries run, on the embedded log and on Kafka, against a
//! replica the test started on one or the other.

use std::time::{Duration, Instant};

use crate::support::{Replica, guest, wait_for};

/// Checks a pattern subscription on `replica`, whose log makes the topics: what it reads
/// before and after a topic that matches is created, and what status lists.
pub fn a_pattern_takes_in_a_topic_created_after_the_deploy(replica: &Replica) {
    let create = |topic: &str, partitions: &str| {
        replica.ok(&["topics", "create", topic, "--partitions", partitions]);
    };
    create("logs-web", "2");
    create("metrics", "2");
    replica.deploy(
        &guest("passthrough"),
        "collector",
        &[
            "--input-pattern",
            "logs-.*",
            "--output",
            "collected",
            "--config",
            "to=collected",
        ],
    );
    let lines =
        |values: &[&str]| -> Vec<String> { values.iter().map(|v| (*v).to_owned()).collect() };
    replica.produce("logs-web", &lines(&["w1", "w2"]), &["--key", "k"]);
    replica.produce("metrics", &lines(&["m1"]), &["--key", "k"]);
    let collected = |want: usize| {
        wait_for(
            Duration::from_secs(60),
            "the matched topics' records",
            || {
                let values = replica.sorted_values("collected");
                (values.len() >= want).then_some(values)
            },
        )
    };
    assert_eq!(collected(2), ["w1", "w2"]);

    // Created after the deploy: one that matches with the function's partition count, one
    // that matches with another, and one that only contains the pattern.
    create("logs-api", "2");
    create("logs-big", "3");
    create("old-logs-web", "2");
    let created = Instant::now();
    replica.produce("logs-api", &lines(&["a1"]), &["--key", "k"]);
    replica.produce("logs-big", &lines(&["b1"]), &["--key", "k"]);
    replica.produce("old-logs-web", &lines(&["o1"]), &["--key", "k"]);
    assert_eq!(collected(3), ["a1", "w1", "w2"]);
    eprintln!(
        "a topic created after the deploy was read within {:?}",
        created.elapsed()
    );
    let status = replica.wait_drained("collector", Duration::from_secs(60));
    assert_eq!(
        status["inputs"],
        serde_json::json!(["logs-api", "logs-web"])
    );
    let topics: Vec<&str> = status["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["topic"].as_str().expect("a topic"))
        .collect();
    assert_eq!(topics, ["logs-api", "logs-api", "logs-web", "logs-web"]);
    let text = replica.ok(&["status", "collector"]);
    assert!(
        text.contains("inputs: logs-api, logs-web") && text.contains("\"logs-.*\""),
        "{text}"
    );
    // Nothing more arrives from the topics it does not read.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(replica.sorted_values("collected"), ["a1", "w1", "w2"]);
}

/// Counts ten keys three times each with the test counter on three partitions of
/// `replica`'s log, and checks that `fnctl state` gives each key's count, found in the
/// partition its records went to, and that a scan of every partition gives them all.
pub fn counts_in_state(replica: &Replica) {
    replica.ok(&["topics", "create", "events", "--partitions", "3"]);
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "events", "--output", "out"],
    );
    let lines: Vec<String> = (0..30)
        .map(|i| serde_json::json!({"k": format!("k{}", i % 10), "i": i}).to_string())
        .collect();
    replica.produce("events", &lines, &["--key-field", "k"]);
    replica.wait_drained("counter", Duration::from_secs(120));
    // The partition a key's records went to, as the output records show it.
    let partitions: std::collections::BTreeMap<String, u64> = replica
        .consume("out")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().expect("a key").to_owned(),
                r["partition"].as_u64().expect("a partition"),
            )
        })
        .collect();
    for k in 0..10 {
        let key = format!("k{k}");
        assert_eq!(
            replica.ok(&["state", "get", "counter", &key]).trim(),
            "3",
            "{key}"
        );
        let answer: serde_json::Value = serde_json::from_str(
            &replica.ok(&["state", "get", "counter", &key, "--format", "json"]),
        )
        .expect("JSON");
        let entry = &answer["entries"][0];
        assert_eq!(entry["json"], 3, "{answer}");
        assert_eq!(
            entry["partition"].as_u64(),
            partitions.get(&key).copied(),
            "{key}"
        );
    }
    let answer: serde_json::Value =
        serde_json::from_str(&replica.ok(&["state", "scan", "counter", "--format", "json"]))
            .expect("JSON");
    let keys: Vec<&str> = answer["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["key"].as_str().expect("a key"))
        .collect();
    assert_eq!(
        keys,
        ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"]
    );
}
