//! The ports of the example functions (fraud-scorer in Go, log-correlator in JavaScript,
//! recommendation-updater in Python) give the records their Rust originals give, in the
//! same order, on the same input.

use std::time::Duration;

use serde_json::Value;
use streamfn_demo::generate::{Dataset, generate};

use crate::support::{Replica, guest, temp_dir, value};

/// One input topic fed in full, keyed by a field, before the next one.
struct Feed<'a> {
    topic: &'static str,
    key_field: &'static str,
    records: &'a [Value],
}

/// Runs `component` as function `name` (with the given inputs and outputs) on a fresh
/// replica whose topics have one partition, feeding `feeds` in turn; returns every record
/// of `outputs`, as `topic key value` lines in the order the topics hold them.
fn run(component: &str, inputs: &[&str], outputs: &[&str], feeds: &[Feed<'_>]) -> Vec<String> {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    for topic in inputs.iter().chain(outputs) {
        replica.ok(&["topics", "create", topic, "--partitions", "1"]);
    }
    let mut topics = Vec::new();
    for input in inputs {
        topics.extend(["--input", input]);
    }
    for output in outputs {
        topics.extend(["--output", output]);
    }
    replica.deploy(&guest(component), "port", &topics);
    for feed in feeds {
        let lines: Vec<String> = feed.records.iter().map(Value::to_string).collect();
        replica.produce(
            feed.topic,
            &lines,
            &[
                "--key-field",
                feed.key_field,
                "--timestamp-field",
                "timestamp_ms",
            ],
        );
        replica.wait_drained("port", Duration::from_secs(300));
    }
    assert!(
        replica.consume("port-dlq").is_empty(),
        "{component} dead-lettered records"
    );
    let mut lines = Vec::new();
    for topic in outputs {
        for record in replica.consume(topic) {
            let key = record["key"].as_str().unwrap_or("-");
            lines.push(format!("{topic} {key} {}", value(&record)));
        }
    }
    lines
}

/// Asserts that the port gives what the original gives, naming the first difference.
fn assert_same(original: &str, port: &str, run_one: impl Fn(&str) -> Vec<String>) {
    let expected = run_one(original);
    assert!(
        !expected.is_empty(),
        "{original} gives records on this input"
    );
    let got = run_one(port);
    if let Some(i) = (0..expected.len().max(got.len())).find(|&i| expected.get(i) != got.get(i)) {
        panic!(
            "{port} differs from {original} at record {} of {} (got {}): expected {:?}, got {:?}",
            i + 1,
            expected.len(),
            got.len(),
            expected.get(i),
            got.get(i)
        );
    }
}

fn dataset() -> Dataset {
    generate(11, 12)
}

#[test]
fn the_go_fraud_scorer_scores_like_the_rust_one() {
    let data = dataset();
    assert_same("fraud-scorer", "fraud-scorer-go", |component| {
        run(
            component,
            &["customer-profiles", "transactions"],
            &["fraud-alerts"],
            &[
                Feed {
                    topic: "customer-profiles",
                    key_field: "customer_id",
                    records: &data.customer_profiles,
                },
                Feed {
                    topic: "transactions",
                    key_field: "customer_id",
                    records: &data.transactions,
                },
            ],
        )
    });
}

#[test]
fn the_javascript_log_correlator_correlates_like_the_rust_one() {
    let data = dataset();
    // Records an hour later close every window and trace the data left open.
    let mut logs = data.service_logs.clone();
    logs.extend(data.closing_logs());
    // One function both re-keys by trace and correlates: on one partition its own
    // re-keyed records come back to it in a deterministic order.
    assert_same("log-correlator", "log-correlator-js", |component| {
        let dir = temp_dir();
        let replica = Replica::start(&dir.path().join("data"));
        for topic in [
            "service-logs",
            "logs-by-trace",
            "error-alerts",
            "correlated-traces",
        ] {
            replica.ok(&["topics", "create", topic, "--partitions", "1"]);
        }
        let wasm = guest(component);
        replica.deploy(
            &wasm,
            "correlator",
            &[
                "--input",
                "service-logs",
                "--output",
                "logs-by-trace",
                "--output",
                "error-alerts",
            ],
        );
        let lines: Vec<String> = logs.iter().map(Value::to_string).collect();
        replica.produce(
            "service-logs",
            &lines,
            &[
                "--key-field",
                "service",
                "--timestamp-field",
                "timestamp_ms",
            ],
        );
        replica.wait_drained("correlator", Duration::from_secs(300));
        // The trace half reads the re-keyed topic only once it is complete.
        replica.deploy(
            &wasm,
            "traces",
            &["--input", "logs-by-trace", "--output", "correlated-traces"],
        );
        replica.wait_drained("traces", Duration::from_secs(300));
        for function in ["correlator", "traces"] {
            assert!(
                replica.consume(&format!("{function}-dlq")).is_empty(),
                "{component} ({function}) dead-lettered records"
            );
        }
        let mut out = Vec::new();
        for topic in ["logs-by-trace", "error-alerts", "correlated-traces"] {
            for record in replica.consume(topic) {
                let key = record["key"].as_str().unwrap_or("-");
                out.push(format!("{topic} {key} {}", value(&record)));
            }
        }
        out
    });
}

#[test]
fn the_python_recommendation_updater_recommends_like_the_rust_one() {
    let data = dataset();
    assert_same(
        "recommendation-updater",
        "recommendation-updater-python",
        |component| {
            run(
                component,
                &["user-activity"],
                &["user-recommendations"],
                &[Feed {
                    topic: "user-activity",
                    key_field: "user_id",
                    records: &data.user_activity,
                }],
            )
        },
    );
}
