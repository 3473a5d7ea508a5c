//! The example functions as users meet them: the demo end to end, and the same input
//! giving the same outputs however it is batched.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, fnctl_path, guest, temp_dir, value};

#[test]
fn the_demo_catches_planted_fraud_and_error_bursts() {
    let demo =
        fnctl_path().with_file_name(format!("streamfn-demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        demo.exists(),
        "{} is not built: run scripts/build first",
        demo.display()
    );
    let output = Command::new(&demo)
        .args(["--scale", "80"])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let counts: Vec<u64> = last
        .strip_prefix("demo: ")
        .unwrap_or_else(|| panic!("last line is the summary: {last}"))
        .split(' ')
        .map(|kv| {
            kv.split_once('=')
                .and_then(|(_, n)| n.parse().ok())
                .expect("name=N")
        })
        .collect();
    assert!(counts[0] > 0 && counts[1] > 0 && counts[2] > 0, "{last}");
    assert_eq!(counts[3], 0, "no dead letters on clean data: {last}");
    let caught = stdout
        .lines()
        .find(|l| l.contains("planted frauds"))
        .unwrap_or_default();
    assert!(caught.contains("caught"), "{stdout}");
}

/// The log correlator's error alerts and trace count on the demo's logs, with a given
/// batch size.
fn correlate(batch: &str) -> (Vec<String>, usize) {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    for topic in ["service-logs", "logs-by-trace"] {
        replica.ok(&["topics", "create", topic, "--partitions", "3"]);
    }
    let data = streamfn_demo::generate::generate(5, 30);
    let lines: Vec<String> = data
        .service_logs
        .iter()
        .chain(&data.closing_logs())
        .map(Value::to_string)
        .collect();
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
    let wasm = guest("log-correlator");
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
            "--batch",
            batch,
        ],
    );
    replica.deploy(
        &wasm,
        "traces",
        &[
            "--input",
            "logs-by-trace",
            "--output",
            "correlated-traces",
            "--batch",
            batch,
        ],
    );
    replica.wait_drained("correlator", Duration::from_secs(120));
    replica.wait_drained("traces", Duration::from_secs(120));
    let sorted = |topic: &str| {
        let mut v: Vec<String> = replica
            .consume(topic)
            .iter()
            .map(|r| value(r).to_owned())
            .collect();
        v.sort();
        v
    };
    (sorted("error-alerts"), sorted("correlated-traces").len())
}

// Windows close on stream time, which only the partition's own records move, so the
// alerts are the same however the records are batched. (Traces are read from a topic the
// first function writes from several partitions at once, whose interleaving is timing,
// so only their presence is checked.)
#[test]
fn stream_time_windows_do_not_depend_on_batching() {
    let (alerts_one, traces_one) = correlate("1");
    let (alerts_many, traces_many) = correlate("500");
    assert!(!alerts_one.is_empty(), "the planted bursts raise alerts");
    assert_eq!(
        alerts_one, alerts_many,
        "alerts differ between batch sizes 1 and 500"
    );
    assert!(traces_one > 0 && traces_many > 0);
}
