//! A replica runs a thousand functions: each makes its instance when it has records and
//! gives it back when idle, so more functions than the replica has instance slots all
//! handle their records, each in a few MiB.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, guest, temp_dir, wait_for};

const FUNCTIONS: usize = 1000;

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn records_of(replica: &Replica, topic: &str) -> u64 {
    let Some((200, body)) = replica.http_get("/v1/topics") else {
        return 0;
    };
    let topics: Value = serde_json::from_str(&body).unwrap_or_default();
    topics
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .and_then(|t| t["records"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_thousand_functions_each_handle_their_record_with_a_tenth_as_many_instance_slots() {
    let dir = temp_dir();
    let replica = Replica::start_with(&dir.path().join("data"), &["--max-instances", "100"]);
    let pid = replica.pid().expect("the harness started it");
    for topic in ["in", "out"] {
        replica.ok(&["topics", "create", topic, "--partitions", "1"]);
    }
    let before = rss(pid);
    replica.deploy(
        &guest("test-counter"),
        "f0000",
        &["--input", "in", "--output", "out"],
    );
    let listed: Value =
        serde_json::from_str(&replica.ok(&["list", "--format", "json"])).expect("json");
    let component = listed[0]["spec"]["component"]
        .as_str()
        .expect("sha256")
        .to_owned();
    for n in 1..FUNCTIONS {
        let spec = serde_json::json!({
            "name": format!("f{n:04}"),
            "component": component,
            "inputs": ["in"],
            "outputs": ["out"],
        });
        let answer = ureq::post(format!("{}/v1/deployments", replica.admin))
            .send_json(&spec)
            .expect("deployed");
        assert_eq!(answer.status(), 201);
    }
    replica.produce("in", &["k 1".to_owned()], &["--key", "k"]);
    wait_for(Duration::from_secs(300), "every function's output", || {
        (records_of(&replica, "out") >= FUNCTIONS as u64).then_some(())
    });
    let busy = rss(pid);
    // Idle functions give their instances back.
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss(pid);
    let per = |rss: u64| (rss.saturating_sub(before)) as f64 / FUNCTIONS as f64 / (1 << 20) as f64;
    eprintln!(
        "{FUNCTIONS} functions: {:.2} MiB each at the end of the burst, {:.2} MiB each once idle (replica {:.0} MiB before, {:.0} MiB after)",
        per(busy),
        per(idle),
        before as f64 / (1 << 20) as f64,
        idle as f64 / (1 << 20) as f64
    );
    assert!(per(idle) < 5.0, "{:.2} MiB a function", per(idle));
    assert_eq!(
        records_of(&replica, "out"),
        FUNCTIONS as u64,
        "each handled its record once"
    );
    let (_, metrics) = replica.http_get("/metrics").expect("metrics");
    assert!(
        metrics.contains(&format!("streamfn_functions {FUNCTIONS}")),
        "{metrics}"
    );
    let status = replica.ok(&["status", "f0999"]);
    assert!(!status.contains("FAILING"), "{status}");
}

#[test]
fn a_function_that_cannot_get_an_instance_shows_as_failing_until_it_can() {
    let dir = temp_dir();
    let replica = Replica::start_with(&dir.path().join("data"), &["--max-instances", "1"]);
    for topic in ["busy-in", "in"] {
        replica.ok(&["topics", "create", topic, "--partitions", "1"]);
    }
    // The one slot stays taken while an endless loop runs out its 8 s deadline.
    replica.deploy(
        &guest("test-loop"),
        "busy",
        &[
            "--input",
            "busy-in",
            "--fuel",
            "1000000000000",
            "--timeout",
            "8000",
        ],
    );
    replica.produce("busy-in", &["loop".to_owned()], &[]);
    std::thread::sleep(Duration::from_millis(500));
    replica.deploy(
        &guest("test-counter"),
        "waiting",
        &["--input", "in", "--output", "out"],
    );
    replica.produce("in", &["k 1".to_owned()], &["--key", "k"]);
    let failing = wait_for(
        Duration::from_secs(30),
        "the waiting function to show as failing",
        || {
            let out = replica.fnctl(&["status", "waiting", "--format", "json"]);
            let status: Value = serde_json::from_slice(&out.stdout).ok()?;
            status[0]["failing"].as_str().map(str::to_owned)
        },
    );
    assert!(failing.contains("every instance slot"), "{failing}");
    let (_, metrics) = replica.http_get("/metrics").expect("metrics");
    assert!(
        metrics.contains("streamfn_function_failing{function=\"waiting\"} 1"),
        "{metrics}"
    );
    let status = replica.wait_drained("waiting", Duration::from_secs(60));
    assert_eq!(
        status["failing"],
        Value::Null,
        "it runs once the slot is free: {status}"
    );
    assert_eq!(replica.consume("out").len(), 1);
}
