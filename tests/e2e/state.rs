//! `fnctl state` reads what a function's last commit left in its state: the value under a
//! key, found in the partition the key's records go to, and scans by prefix across every
//! partition, in key order and in pages; what is not there, and partitions the function
//! does not have, are said so.

use serde_json::Value;

use crate::scenarios::counts_in_state;
use crate::support::{Replica, temp_dir};

#[test]
fn fnctl_state_reads_the_committed_state_by_key_and_by_prefix() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    counts_in_state(&replica);

    let missing = replica.fnctl(&["state", "get", "counter", "nobody"]);
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && said.contains("nothing under \"nobody\""),
        "{said}"
    );
    let wrong = replica.fnctl(&["state", "scan", "counter", "--partition", "7"]);
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && said.contains("partitions 0 to 2"),
        "{said}"
    );

    // Pages of a scan follow each other in key order.
    let page = |after: Option<&str>| -> Vec<String> {
        let mut args = vec![
            "state", "scan", "counter", "--prefix", "k", "--limit", "4", "--format", "json",
        ];
        if let Some(after) = after {
            args.extend(["--after", after]);
        }
        let answer: Value = serde_json::from_str(&replica.ok(&args)).expect("JSON");
        answer["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["key"].as_str().expect("a key").to_owned())
            .collect()
    };
    let first = page(None);
    assert_eq!(first, ["k0", "k1", "k2", "k3"]);
    assert_eq!(page(Some("k3")), ["k4", "k5", "k6", "k7"]);
    assert_eq!(page(Some("k7")), ["k8", "k9"]);
    let text = replica.ok(&["state", "scan", "counter", "--prefix", "k1"]);
    assert!(text.contains("KEY") && text.contains("k1"), "{text}");

    let undeployed = replica.fnctl(&["state", "get", "nobody", "k1"]);
    assert!(!undeployed.status.success());
}

/// Without a cache of committed state (`fnctl serve --state-cache-mb 0`) every read goes
/// to the store, and a second burst counts on from what the first committed.
#[test]
fn without_a_state_cache_reads_go_to_the_store_and_counts_hold() {
    let dir = temp_dir();
    let replica = Replica::start_with(&dir.path().join("replica"), &["--state-cache-mb", "0"]);
    counts_in_state(&replica);
    let lines: Vec<String> = (30..60)
        .map(|i| serde_json::json!({"k": format!("k{}", i % 10), "i": i}).to_string())
        .collect();
    replica.produce("events", &lines, &["--key-field", "k"]);
    replica.wait_drained("counter", std::time::Duration::from_secs(120));
    for k in 0..10 {
        let key = format!("k{k}");
        assert_eq!(
            replica.ok(&["state", "get", "counter", &key]).trim(),
            "6",
            "{key}"
        );
    }
    let outputs = replica.consume("out");
    assert_eq!(outputs.len(), 60);
}
