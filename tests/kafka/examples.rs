//! The example functions on Kafka give the same outputs for the same input as on the
//! embedded log.

use std::time::Duration;

use serde_json::Value;
use streamfn_demo::generate::{self, Dataset};

use crate::broker::Broker;
use crate::support::{Replica, guest, temp_dir, value};

/// The demo's input, small.
pub fn dataset() -> Dataset {
    generate::generate(21, 40)
}

fn lines(values: &[Value]) -> Vec<String> {
    values.iter().map(Value::to_string).collect()
}

/// The functions the demo runs.
pub const FUNCTIONS: [&str; 4] = [
    "fraud-scorer",
    "log-correlator",
    "trace-correlator",
    "recommendation-updater",
];

/// Creates the demo's topics and deploys its functions.
pub fn set_up(replica: &Replica) {
    for topic in [
        "transactions",
        "customer-profiles",
        "service-logs",
        "logs-by-trace",
        "user-activity",
    ] {
        replica.ok(&["topics", "create", topic, "--partitions", "4"]);
    }
    let fraud = guest("fraud-scorer");
    let logs = guest("log-correlator");
    let recs = guest("recommendation-updater");
    let path = |p: &std::path::PathBuf| p.to_str().expect("utf-8").to_owned();
    let (fraud, logs, recs) = (path(&fraud), path(&logs), path(&recs));
    replica.ok(&[
        "deploy",
        &fraud,
        "--name",
        "fraud-scorer",
        "--input",
        "transactions",
        "--input",
        "customer-profiles",
        "--output",
        "fraud-alerts",
    ]);
    replica.ok(&[
        "deploy",
        &logs,
        "--name",
        "log-correlator",
        "--input",
        "service-logs",
        "--output",
        "logs-by-trace",
        "--output",
        "error-alerts",
    ]);
    replica.ok(&[
        "deploy",
        &logs,
        "--name",
        "trace-correlator",
        "--input",
        "logs-by-trace",
        "--output",
        "correlated-traces",
    ]);
    replica.ok(&[
        "deploy",
        &recs,
        "--name",
        "recommendation-updater",
        "--input",
        "user-activity",
        "--output",
        "user-recommendations",
    ]);
}

/// Produces the customer profiles and transactions.
pub fn feed_payments(replica: &Replica, data: &Dataset) {
    let ts = [
        "--key-field",
        "customer_id",
        "--timestamp-field",
        "timestamp_ms",
    ];
    replica.produce("customer-profiles", &lines(&data.customer_profiles), &ts);
    replica.produce("transactions", &lines(&data.transactions), &ts);
}

/// Produces the rest of the demo's input.
pub fn feed_others(replica: &Replica, data: &Dataset) {
    let mut logs = lines(&data.service_logs);
    logs.extend(lines(&data.closing_logs()));
    replica.produce(
        "service-logs",
        &logs,
        &[
            "--key-field",
            "service",
            "--timestamp-field",
            "timestamp_ms",
        ],
    );
    replica.produce(
        "user-activity",
        &lines(&data.user_activity),
        &[
            "--key-field",
            "user_id",
            "--timestamp-field",
            "timestamp_ms",
        ],
    );
}

/// What the functions wrote, values sorted.
#[derive(Debug, PartialEq)]
pub struct Outputs {
    pub alerts: Vec<String>,
    pub error_alerts: Vec<String>,
    pub recommendations: Vec<String>,
    pub traces: usize,
}

/// Waits for every function to catch up, then reads the outputs.
pub fn collect(replica: &Replica) -> Outputs {
    // Twice: the trace correlator reads what the log correlator writes.
    for _ in 0..2 {
        for function in FUNCTIONS {
            replica.wait_drained(function, Duration::from_secs(180));
        }
    }
    let sorted = |topic: &str| {
        let mut values: Vec<String> = replica
            .consume(topic)
            .iter()
            .map(|r| value(r).to_owned())
            .collect();
        values.sort();
        values
    };
    Outputs {
        alerts: sorted("fraud-alerts"),
        error_alerts: sorted("error-alerts"),
        recommendations: sorted("user-recommendations"),
        traces: replica.consume("correlated-traces").len(),
    }
}

#[test]
fn the_examples_give_the_same_outputs_on_kafka_as_on_the_embedded_log() {
    let dir = temp_dir();
    let data = dataset();
    let embedded = Replica::start(&dir.path().join("embedded"));
    set_up(&embedded);
    feed_payments(&embedded, &data);
    feed_others(&embedded, &data);
    let expected = collect(&embedded);
    assert!(
        !expected.alerts.is_empty()
            && !expected.error_alerts.is_empty()
            && !expected.recommendations.is_empty()
    );

    let broker = Broker::start(&dir.path().join("kafka"));
    let replica = Replica::start_on_kafka(&dir.path().join("replica"), &broker.address, &[]);
    set_up(&replica);
    feed_payments(&replica, &data);
    feed_others(&replica, &data);
    let got = collect(&replica);
    assert_eq!(got.alerts, expected.alerts, "fraud alerts");
    assert_eq!(got.error_alerts, expected.error_alerts, "error alerts");
    assert_eq!(
        got.recommendations, expected.recommendations,
        "recommendations"
    );
    assert!(
        got.traces > 0 && expected.traces > 0,
        "traces: {} on Kafka, {} embedded",
        got.traces,
        expected.traces
    );
}
