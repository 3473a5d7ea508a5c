//! The ports of the example functions (fraud-scorer in Go, JavaScript and Python,
//! log-correlator in JavaScript, recommendation-updater in Python) give the records their
//! Rust originals give, in the same order, on the same input.

use std::time::Duration;

use streamfn_demo::generate::{Dataset, generate};
use streamfn_demo::topology::Feed;

use crate::support::{Replica, guest, must, temp_dir, topology, value};

/// Runs `component` as the example `example` on a fresh replica whose topics have one
/// partition, feeding `feeds` in turn, each in full before the next; returns every record
/// of its outputs, as `topic key value` lines in the order the topics hold them.
fn run(component: &str, example: &str, feeds: &[Feed<'_>]) -> Vec<String> {
    let example = must(topology::function(example));
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    for topic in example.inputs.iter().chain(example.outputs) {
        replica.ok(&["topics", "create", topic, "--partitions", "1"]);
    }
    replica.deploy(&guest(component), "port", &example.topic_args());
    for feed in feeds {
        must(feed.produce(&replica));
        replica.wait_drained("port", Duration::from_secs(300));
    }
    assert!(
        replica.consume("port-dlq").is_empty(),
        "{component} dead-lettered records"
    );
    outputs(&replica, example.outputs)
}

/// Every record of `topics`, as `topic key value` lines in the order the topics hold them.
fn outputs(replica: &Replica, topics: &[&str]) -> Vec<String> {
    let mut lines = Vec::new();
    for topic in topics {
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
fn the_go_javascript_and_python_fraud_scorers_score_like_the_rust_one() {
    let data = dataset();
    for port in ["fraud-scorer-go", "fraud-scorer-js", "fraud-scorer-python"] {
        assert_same("fraud-scorer", port, |component| {
            run(component, "fraud-scorer", &topology::payments(&data))
        });
    }
}

#[test]
fn the_javascript_log_correlator_correlates_like_the_rust_one() {
    let data = dataset();
    // The service logs, with records an hour later that close every window and trace the
    // data left open.
    let logs = topology::logs(&data);
    // On one partition the re-keyed records come back to the trace half in a
    // deterministic order.
    assert_same("log-correlator", "log-correlator-js", |component| {
        let dir = temp_dir();
        let replica = Replica::start(&dir.path().join("data"));
        let halves = ["log-correlator", "trace-correlator"].map(|f| must(topology::function(f)));
        for topic in halves.iter().flat_map(|f| f.inputs.iter().chain(f.outputs)) {
            replica.ok(&[
                "topics",
                "create",
                topic,
                "--partitions",
                "1",
                "--if-not-exists",
            ]);
        }
        let wasm = guest(component);
        replica.deploy(&wasm, "correlator", &halves[0].topic_args());
        must(logs.produce(&replica));
        replica.wait_drained("correlator", Duration::from_secs(300));
        // The trace half reads the re-keyed topic only once it is complete.
        replica.deploy(&wasm, "traces", &halves[1].topic_args());
        replica.wait_drained("traces", Duration::from_secs(300));
        for function in ["correlator", "traces"] {
            assert!(
                replica.consume(&format!("{function}-dlq")).is_empty(),
                "{component} ({function}) dead-lettered records"
            );
        }
        outputs(
            &replica,
            &["logs-by-trace", "error-alerts", "correlated-traces"],
        )
    });
}

#[test]
fn the_python_recommendation_updater_recommends_like_the_rust_one() {
    let data = dataset();
    assert_same(
        "recommendation-updater",
        "recommendation-updater-python",
        |component| {
            let activity = topology::activity(&data);
            run(component, "recommendation-updater", &[activity])
        },
    );
}
