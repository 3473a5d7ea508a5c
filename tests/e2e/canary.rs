//! Canaries on the embedded log: a new version on a share of the partitions beside the
//! running one, promoted or rolled back mid-stream with every record counted once, one
//! that fails too often ending by itself with nothing lost, and the canaries a replica
//! refuses.

use std::time::Duration;

use serde_json::Value;

use crate::scenarios::a_canary_its_promotion_and_a_rollback_count_every_record_once;
use crate::support::{Replica, counts_by_key, guest, header, temp_dir, wait_for};

#[test]
fn a_canary_promoted_then_another_rolled_back_mid_stream_count_every_record_once() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    a_canary_its_promotion_and_a_rollback_count_every_record_once(&replica);
}

#[test]
fn a_canary_that_fails_past_its_bound_ends_by_itself_and_loses_nothing() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    replica.ok(&["topics", "create", "events", "--partitions", "4"]);
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "events", "--output", "out"],
    );
    // The trapping guest as a canary: every record it takes fails.
    replica.deploy(
        &guest("test-trap"),
        "counter",
        &[
            "--input",
            "events",
            "--output",
            "out",
            "--canary",
            "50",
            "--canary-max-failure-rate",
            "0.2",
        ],
    );
    // `trap` to every partition, under a key of its own.
    let per_partition = 500;
    let total = 4 * per_partition;
    let lines = vec!["trap".to_owned(); per_partition];
    for partition in 0..4 {
        let (key, partition) = (format!("k{partition}"), partition.to_string());
        replica.produce(
            "events",
            &lines,
            &["--key", &key, "--partition", &partition],
        );
    }
    let status = wait_for(Duration::from_secs(120), "the canary to end", || {
        let (_, body) = replica.http_get("/v1/deployments/counter")?;
        let status: Value = serde_json::from_str(&body).ok()?;
        (status["deployment"]["version"] == 3).then_some(status)
    });
    let cause = status["deployment"]["cause"].as_str().expect("a cause");
    assert!(
        cause.starts_with("canary version 2 failed") && cause.ends_with("above its bound of 20.0%"),
        "{cause}"
    );
    assert!(status["deployment"]["canary"].is_null(), "{status}");
    let status = replica.wait_drained("counter", Duration::from_secs(120));
    assert_eq!(
        status["deployment"]["version"], 3,
        "it stays ended: {status}"
    );
    let text = replica.ok(&["status", "counter"]);
    assert!(
        text.contains("version 3 was made because canary version 2 failed"),
        "{text}"
    );

    // Every record is either counted by the first version's code or dead-lettered by
    // the canary, once.
    let counted = replica.consume("out");
    let dead = replica.consume("counter-dlq");
    assert!(
        dead.len() >= 100,
        "the canary was judged after 100 events: {}",
        dead.len()
    );
    for record in &dead {
        assert_eq!(header(record, "streamfn.version"), "2");
        assert_eq!(header(record, "streamfn.failure.kind"), "trap");
    }
    assert_eq!(counted.len() + dead.len(), total, "every record once");
    let mut offsets: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            (
                header(r, "streamfn.source.partition").to_owned(),
                header(r, "streamfn.source.offset").to_owned(),
            )
        })
        .collect();
    offsets.sort();
    offsets.dedup();
    assert_eq!(offsets.len(), dead.len(), "no record dead-lettered twice");
    for (key, counts) in counts_by_key(&counted) {
        let expected: Vec<u64> = (1..=counts.len() as u64).collect();
        assert_eq!(counts, expected, "{key} counted once per record it got");
    }
}

#[test]
fn a_canary_is_refused_without_a_running_version_on_one_partition_or_other_inputs() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    replica.ok(&["topics", "create", "events", "--partitions", "4"]);
    replica.ok(&["topics", "create", "single", "--partitions", "1"]);
    replica.ok(&["topics", "create", "other", "--partitions", "4"]);
    let counter = guest("test-counter");
    let counter = counter.to_string_lossy();
    let refused = |args: &[&str], said: &str| {
        let mut all = vec!["deploy", &*counter, "--name"];
        all.extend_from_slice(args);
        let out = replica.fnctl(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(said), "{stderr}");
    };
    refused(
        &["counter", "--input", "events", "--canary", "50"],
        "runs none: deploy it without --canary first",
    );
    replica.deploy(&guest("test-counter"), "counter", &["--input", "events"]);
    replica.deploy(&guest("test-counter"), "lonely", &["--input", "single"]);
    refused(
        &["lonely", "--input", "single", "--canary", "50"],
        "a canary runs on whole partitions",
    );
    refused(
        &["counter", "--input", "other", "--canary", "50"],
        "a canary reads the inputs version 1 of counter reads",
    );
    refused(
        &["counter", "--input", "events", "--canary", "0"],
        "--canary",
    );
    let out = replica.fnctl(&["promote", "counter"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is not a running canary"),
        "{stderr}"
    );
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "events", "--canary", "30"],
    );
    refused(
        &["counter", "--input", "events", "--canary", "30"],
        "is a canary already",
    );
    let out = replica.fnctl(&["replay", "counter", "--from", "earliest"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a canary: `fnctl promote counter`"),
        "{stderr}"
    );
    let versions = replica.ok(&["versions", "counter"]);
    assert_eq!(
        versions.lines().count(),
        3,
        "header and two versions: {versions}"
    );
}
