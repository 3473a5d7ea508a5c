//! The example functions as users meet them: the demo end to end (with a lookup of the
//! user service's read model), and the same input giving the same outputs however it is
//! batched.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::support::{Replica, fnctl_path, guest, must, temp_dir, topology};

#[test]
fn the_demo_catches_planted_fraud_error_bursts_and_bad_commands() {
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
    let summary: BTreeMap<&str, &str> = last
        .strip_prefix("demo: ")
        .unwrap_or_else(|| panic!("the last line is the summary: {last}"))
        .split(' ')
        .map(|kv| kv.split_once('=').expect("name=value"))
        .collect();
    let count = |name: &str| -> u64 {
        summary
            .get(name)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the summary has a count {name}: {last}"))
    };
    let share = |name: &str| -> (u64, u64) {
        let (caught, planted) = summary
            .get(name)
            .and_then(|v| v.split_once('/'))
            .unwrap_or_else(|| panic!("the summary has {name}=N/M: {last}"));
        (
            caught.parse().expect("a number"),
            planted.parse().expect("a number"),
        )
    };
    for name in ["fraud-alerts", "error-alerts", "recommendations"] {
        assert!(count(name) > 0, "{name}: {last}");
    }
    assert_eq!(
        count("dead-letters"),
        0,
        "no dead letters on clean data: {last}"
    );
    let (frauds, planted_frauds) = share("frauds-caught");
    assert!(planted_frauds > 0, "the generator plants frauds: {last}");
    assert!(
        frauds * 4 >= planted_frauds * 3,
        "the fraud scorer catches at least 3 in 4 planted frauds: {last}"
    );
    let (bursts, planted_bursts) = share("bursts-caught");
    assert!(
        planted_bursts > 0,
        "the generator plants error bursts: {last}"
    );
    assert_eq!(
        bursts, planted_bursts,
        "every planted error burst is alerted: {last}"
    );
    for name in ["spikes-caught", "late-dead-lettered"] {
        let (caught, planted) = share(name);
        assert!(planted > 0 && caught == planted, "{name}: {last}");
    }
    let (rejected, planted_commands) = share("commands-rejected");
    assert!(
        planted_commands > 0,
        "the generator plants bad commands: {last}"
    );
    assert_eq!(
        rejected, planted_commands,
        "every planted command that does not apply is rejected: {last}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("the read model of u-") && l.contains("\"email\"")),
        "the demo prints a user's view from its state: {stdout}"
    );
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
    let logs = topology::logs(&data);
    must(logs.produce(&replica));
    for (name, example) in [
        ("correlator", "log-correlator"),
        ("traces", "trace-correlator"),
    ] {
        let example = must(topology::function(example));
        let mut args = example.topic_args();
        args.extend(["--batch", batch]);
        replica.deploy(&guest(example.guest), name, &args);
    }
    replica.wait_drained("correlator", Duration::from_secs(120));
    replica.wait_drained("traces", Duration::from_secs(120));
    (
        replica.sorted_values("error-alerts"),
        replica.consume("correlated-traces").len(),
    )
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
