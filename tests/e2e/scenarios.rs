//! Scenarios that both test binaries run, on the embedded log and on Kafka, against a
//! replica the test started on one or the other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::{Replica, counts_exactly_once, guest, header, value, wait_for};

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

/// The partition each key's records are in, in `topic`.
fn partitions_of_keys(replica: &Replica, topic: &str) -> BTreeMap<String, u64> {
    replica
        .consume(topic)
        .iter()
        .map(|r| {
            (
                r["key"].as_str().expect("a key").to_owned(),
                r["partition"].as_u64().expect("a partition"),
            )
        })
        .collect()
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
    let partitions = partitions_of_keys(replica, "out");
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

/// Runs the test counter on four partitions of `replica`'s log while records keep
/// coming, through a canary on half the partitions, its promotion, a second canary on a
/// quarter and its rollback, and checks that every record was counted exactly once
/// across the versions, that the second canary wrote only from its partition, and that
/// status showed both versions' figures side by side while the first canary ran.
pub fn a_canary_its_promotion_and_a_rollback_count_every_record_once(replica: &Replica) {
    const KEYS: usize = 16;
    const CHUNKS: usize = 60;
    const PER_CHUNK: usize = 240;
    replica.ok(&["topics", "create", "events", "--partitions", "4"]);
    let counter = guest("test-counter");
    let deploy = |label: &str, extra: &[&str]| {
        let config = format!("label={label}");
        let mut args = vec!["--input", "events", "--output", "out", "--config", &config];
        args.extend_from_slice(extra);
        replica.deploy(&counter, "counter", &args)
    };
    deploy("v1", &["--batch", "20"]);
    let status = || -> Option<serde_json::Value> {
        let (_, body) = replica.http_get("/v1/deployments/counter")?;
        serde_json::from_str(&body).ok()
    };
    // The figures of the running version `version`, once it has handled a record.
    let busy = |version: u64| {
        wait_for(
            Duration::from_secs(120),
            "the version to run records",
            || {
                let status = status()?;
                let running = status["running"].as_array()?.clone();
                running
                    .into_iter()
                    .find(|v| v["figures"]["version"] == version)
                    .filter(|v| v["figures"]["records_in"].as_u64() > Some(0))
                    .map(|v| (status.clone(), v))
            },
        )
    };
    let produce = |chunk: usize| {
        let lines: Vec<String> = (chunk * PER_CHUNK..(chunk + 1) * PER_CHUNK)
            .map(|i| serde_json::json!({"k": format!("k{}", i % KEYS)}).to_string())
            .collect();
        replica.produce("events", &lines, &["--key-field", "k"]);
    };
    produce(0);
    replica.wait_drained("counter", Duration::from_secs(120));
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            for chunk in 1..CHUNKS {
                produce(chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        let said = deploy("v2", &["--batch", "20", "--canary", "50"]);
        assert!(said.contains("canary on partitions 0, 1 (50%)"), "{said}");
        let (status, canary) = busy(2);
        let (_, base) = busy(1);
        assert_eq!(canary["partitions"], serde_json::json!([0, 1]), "{status}");
        assert_eq!(canary["canary"], true, "{status}");
        assert_eq!(base["partitions"], serde_json::json!([2, 3]), "{status}");
        let text = replica.ok(&["status", "counter"]);
        assert!(
            text.contains("2 (canary)") && text.contains("FAILURE RATE"),
            "{text}"
        );

        let said = replica.ok(&["promote", "counter"]);
        assert!(said.contains("promoted counter version 2"), "{said}");
        deploy("v3", &["--batch", "20", "--canary", "25"]);
        busy(3);
        let said = replica.ok(&["rollback", "counter"]);
        assert!(said.contains("ended the canary version 3"), "{said}");
        assert!(
            !producer.is_finished(),
            "the records came on through every change"
        );
        producer.join().expect("the producer");
    });
    let status = replica.wait_drained("counter", Duration::from_secs(180));
    assert_eq!(status["deployment"]["version"], 4, "{status}");
    assert_eq!(status["deployment"]["spec"]["config"]["label"], "v2");

    let total = CHUNKS * PER_CHUNK;
    let outputs = replica.consume("out");
    let values: Vec<&str> = outputs.iter().map(value).collect();
    counts_exactly_once(values, KEYS, total).expect("every record counted once");
    let partition_of = partitions_of_keys(replica, "events");
    let mut labels: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for record in &outputs {
        let key = record["key"].as_str().expect("a key");
        labels
            .entry(header(record, "label"))
            .or_default()
            .insert(partition_of[key]);
    }
    assert_eq!(
        labels["v3"],
        [0].into(),
        "the second canary ran partition 0 only"
    );
    assert_eq!(labels["v2"], [0, 1, 2, 3].into(), "{labels:?}");
    assert_eq!(labels["v1"], [0, 1, 2, 3].into(), "{labels:?}");
}
