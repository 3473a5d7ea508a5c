//! Every failure kind ends in the dead-letter topic with headers that say what, where and
//! why, while the other events of the batch are handled and committed.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, guest, header, temp_dir, value};

struct Case {
    name: &'static str,
    guest: &'static str,
    args: &'static [&'static str],
    bad: &'static str,
    kind: &'static str,
    reason: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "trap",
        guest: "test-trap",
        args: &[],
        bad: "trap",
        kind: "trap",
        reason: "poison record at offset 10",
    },
    Case {
        name: "fuel",
        guest: "test-loop",
        args: &["--fuel", "2000000"],
        bad: "loop",
        kind: "out-of-fuel",
        reason: "fuel",
    },
    Case {
        name: "deadline",
        guest: "test-loop",
        args: &["--fuel", "1000000000000", "--timeout", "300"],
        bad: "loop",
        kind: "timeout",
        reason: "deadline of 300 ms",
    },
    Case {
        name: "memory",
        guest: "test-memory-bomb",
        args: &["--memory", "32"],
        bad: "grow",
        kind: "out-of-memory",
        reason: "32 MiB",
    },
    Case {
        name: "undeclared",
        guest: "test-bad-output",
        args: &[],
        bad: "undeclared",
        kind: "output-denied",
        reason: "\"not-declared\", which the deployment does not declare",
    },
    Case {
        name: "flood",
        guest: "test-bad-output",
        args: &[],
        bad: "flood",
        kind: "output-denied",
        reason: "more than 100 records",
    },
    Case {
        name: "big-state",
        guest: "test-bad-output",
        // Filling 100 MB in the guest burns more than the default fuel of an event.
        args: &["--fuel", "5000000000"],
        bad: "state 100000000",
        kind: "state-denied",
        reason: "a state value of 100000000 bytes; values may be at most 1048576 bytes",
    },
    Case {
        name: "much-state",
        guest: "test-bad-output",
        // A call of several events shares their budgets, so the one event overdraws all 21.
        args: &["--max-state-bytes", "200"],
        bad: "state 6000",
        kind: "state-denied",
        reason: "more than 200 bytes of state",
    },
    Case {
        name: "reject",
        guest: "test-reject",
        args: &[],
        bad: "reject",
        kind: "rejected",
        reason: "offset 10 is not acceptable",
    },
    Case {
        name: "retry",
        guest: "test-reject",
        args: &["--max-retries", "2"],
        bad: "retry",
        kind: "retry-exhausted",
        reason: "downstream not ready",
    },
];

#[test]
fn each_failure_kind_is_dead_lettered_with_its_headers_and_the_rest_commits() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    let good: Vec<String> = (0..20).map(|i| format!("good-{i:02}")).collect();
    for case in CASES {
        let input = format!("in-{}", case.name);
        let output = format!("out-{}", case.name);
        let to = format!("to={output}");
        replica.ok(&["topics", "create", &input, "--partitions", "1"]);
        let wasm = guest(case.guest);
        let mut args = vec![
            "deploy",
            wasm.to_str().expect("utf-8 path"),
            "--name",
            case.name,
            "--input",
            &input,
            "--output",
            &output,
            "--config",
            &to,
        ];
        args.extend_from_slice(case.args);
        replica.ok(&args);
        // The bad event sits in the middle of one batch of 21.
        let mut lines = good[..10].to_vec();
        lines.push(case.bad.to_owned());
        lines.extend_from_slice(&good[10..]);
        replica.produce(&input, &lines, &[]);
    }
    for case in CASES {
        let status = replica.wait_drained(case.name, Duration::from_secs(60));
        let outputs: Vec<String> = replica
            .consume(&format!("out-{}", case.name))
            .iter()
            .map(|r| value(r).split('#').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            outputs, good,
            "{}: every good event is handled once, in order",
            case.name
        );

        let dead = replica.consume(&format!("{}-dlq", case.name));
        assert_eq!(
            dead.len(),
            1,
            "{}: one dead letter, got {dead:?}",
            case.name
        );
        let letter = &dead[0];
        assert_eq!(value(letter), case.bad, "{}", case.name);
        assert_eq!(
            header(letter, "streamfn.failure.kind"),
            case.kind,
            "{}: {letter}",
            case.name
        );
        let reason = header(letter, "streamfn.failure.reason");
        assert!(
            reason.contains(case.reason),
            "{}: reason {reason:?} lacks {:?}",
            case.name,
            case.reason
        );
        assert_eq!(header(letter, "streamfn.function"), case.name);
        assert_eq!(header(letter, "streamfn.version"), "1");
        assert_eq!(
            header(letter, "streamfn.source.topic"),
            format!("in-{}", case.name)
        );
        assert_eq!(header(letter, "streamfn.source.partition"), "0");
        assert_eq!(header(letter, "streamfn.source.offset"), "10");

        assert_eq!(
            status["failures"][case.kind],
            Value::from(1),
            "{}: {status}",
            case.name
        );
        assert_eq!(status["dead_letters"], Value::from(1), "{}", case.name);
        assert_eq!(status["records_in"], Value::from(21), "{}", case.name);
    }
}

#[test]
fn a_rejected_event_leaves_no_state_behind() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    let wasm = guest("test-reject");
    replica.deploy(&wasm, "f", &["--input", "in", "--output", "out"]);
    let lines: Vec<String> = ["a", "reject", "b", "reject", "c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    replica.produce("in", &lines, &[]);
    let status = replica.wait_drained("f", Duration::from_secs(30));
    assert_eq!(status["state_entries"], Value::from(1));
    // The guest counts every event in state before deciding; the counts it reports show
    // that the rejected events' writes were discarded.
    let outputs: Vec<String> = replica
        .consume("out")
        .iter()
        .map(|r| value(r).to_owned())
        .collect();
    assert_eq!(outputs, vec!["a#1", "b#2", "c#3"]);
    assert_eq!(replica.consume("f-dlq").len(), 2);
}

#[test]
fn a_partition_holds_no_more_state_than_its_bound() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    replica.deploy(
        &guest("test-bad-output"),
        "f",
        &[
            "--input",
            "in",
            "--output",
            "out",
            "--max-partition-state-bytes",
            "10000",
        ],
    );
    let records: Vec<Value> = (0..30)
        .map(|i| serde_json::json!({ "key": format!("k{i:02}"), "value": "state 1000" }))
        .collect();
    let answer = ureq::post(format!("{}/v1/topics/in/records", replica.admin))
        .send_json(serde_json::json!({ "records": records }))
        .expect("produced");
    assert_eq!(answer.status(), 200);
    let status = replica.wait_drained("f", Duration::from_secs(60));
    let held = status["state_bytes"].as_u64().expect("state bytes");
    assert!(held <= 10_000 && held > 8000, "{status}");
    let dead = replica.consume("f-dlq");
    assert_eq!(dead.len() + replica.consume("out").len(), 30);
    assert_eq!(dead.len(), 21, "nine values of 1003 bytes fit in 10000");
    for letter in &dead {
        assert_eq!(header(letter, "streamfn.failure.kind"), "state-denied");
        assert!(header(letter, "streamfn.failure.reason").contains("at most 10000"));
    }
    assert_eq!(status["failures"]["state-denied"], Value::from(21));
}
