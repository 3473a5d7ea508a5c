//! The conformance function (tests/conformance/SPEC.md), built with each SDK, gives the
//! records, dead letters and state that `tests/conformance/expected.txt` holds, byte for
//! byte: what a function does depends neither on the language it is written in nor on the
//! contract version (0.1.0 or 0.2.0) it was built for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, guest, temp_dir};

/// The builds of the conformance function, each with the contract version it targets.
const BUILDS: [(&str, &str); 8] = [
    ("conformance-rust", "0.2.0"),
    ("conformance-rust-v0-1", "0.1.0"),
    ("conformance-js", "0.2.0"),
    ("conformance-js-v0-1", "0.1.0"),
    ("conformance-python", "0.2.0"),
    ("conformance-python-v0-1", "0.1.0"),
    ("conformance-go", "0.2.0"),
    ("conformance-go-v0-1", "0.1.0"),
];

/// Whether `component` exports the handler of contract `version` (and no other).
fn targets(component: &Path, version: &str) -> bool {
    let bytes = std::fs::read(component).expect("component readable");
    let exports = |v: &str| {
        let name = format!("streamfn:function/handler@{v}");
        bytes.windows(name.len()).any(|w| w == name.as_bytes())
    };
    let other = if version == "0.1.0" { "0.2.0" } else { "0.1.0" };
    exports(version) && !exports(other)
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

/// Runs the fixtures through `component` on a fresh replica; the outputs as lines of
/// `expected.txt`: `TOPIC KEY TIMESTAMP VALUE [| headers]`.
fn run(component: &Path) -> Vec<String> {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    replica.deploy(
        component,
        "conf",
        &[
            "--input",
            "in",
            "--output",
            "out",
            "--output",
            "side",
            "--config",
            "greeting=hello",
            "--max-retries",
            "1",
        ],
    );
    let fixtures =
        std::fs::read_to_string(conformance_dir().join("fixtures.jsonl")).expect("fixtures.jsonl");
    let records: Vec<Value> = fixtures
        .lines()
        .map(|l| serde_json::from_str(l).expect("a fixture is JSON"))
        .collect();
    ureq::post(format!("{}/v1/topics/in/records", replica.admin))
        .send_json(serde_json::json!({ "records": records }))
        .expect("fixtures produced");
    replica.wait_drained("conf", Duration::from_secs(120));

    // The `log info hello world` fixture reaches the function's log.
    let logs = replica.ok(&["logs", "conf", "--format", "json"]);
    let logged = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|entry| entry["level"] == "info" && entry["message"] == "hello world");
    assert!(
        logged,
        "{}: no info log line `hello world` in:\n{logs}",
        component.display()
    );

    let mut lines = Vec::new();
    for (topic, shown) in [("out", "out"), ("side", "side"), ("conf-dlq", "dlq")] {
        for record in replica.consume(topic) {
            let key = record["key"].as_str().unwrap_or("-");
            let mut line = format!(
                "{shown} {key} {} {}",
                record["timestamp"],
                record["value"].as_str().expect("text value")
            );
            let headers = record["headers"].as_object().expect("headers");
            let header = |name: &str| headers.get(name).and_then(Value::as_str);
            match header("streamfn.failure.kind") {
                Some(kind @ ("rejected" | "retry-exhausted")) => {
                    let reason = header("streamfn.failure.reason").unwrap_or("");
                    line += &format!(" | kind={kind} reason={reason}");
                }
                Some(kind) => line += &format!(" | kind={kind}"),
                None if !headers.is_empty() => {
                    let shown: Vec<String> = headers
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect();
                    line += &format!(" | {}", shown.join(" "));
                }
                None => {}
            }
            lines.push(line);
        }
    }
    lines
}

#[test]
fn every_sdk_builds_a_conformance_function_with_the_expected_output() {
    let expected: Vec<String> = std::fs::read_to_string(conformance_dir().join("expected.txt"))
        .expect("expected.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(expected.len() > 20, "expected.txt holds the outputs");
    let mut differing = Vec::new();
    for (build, version) in BUILDS {
        let component = guest(build);
        assert!(
            targets(&component, version),
            "{build} is not built for contract {version} alone"
        );
        let got = run(&component);
        if got != expected {
            let first = (0..expected.len().max(got.len()))
                .find(|&i| expected.get(i) != got.get(i))
                .unwrap_or(0);
            differing.push(format!(
                "{build}: line {}: expected {:?}, got {:?}",
                first + 1,
                expected.get(first),
                got.get(first)
            ));
        }
    }
    assert!(differing.is_empty(), "{}", differing.join("\n"));
}
