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
