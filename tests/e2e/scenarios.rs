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
