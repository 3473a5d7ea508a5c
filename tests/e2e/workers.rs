//! A replica's workers: a function on eight partitions run by four workers handles every
//! record once, in order per key, with each partition's state intact.

use std::time::Duration;

use crate::support::{Replica, counts_by_key, guest, temp_dir};

#[test]
fn eight_partitions_on_four_workers_count_every_key_once_and_in_order() {
    const KEYS: usize = 64;
    const PER_KEY: usize = 100;
    let dir = temp_dir();
    let replica = Replica::start_with(&dir.path().join("data"), &["--workers", "4"]);
    for topic in ["in", "out"] {
        replica.ok(&["topics", "create", topic, "--partitions", "8"]);
    }
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "in", "--output", "out"],
    );
    let lines: Vec<String> = (0..KEYS * PER_KEY)
        .map(|n| format!(r#"{{"k":"k{}","n":{n}}}"#, n % KEYS))
        .collect();
    replica.produce("in", &lines, &["--key-field", "k"]);
    replica.wait_drained("counter", Duration::from_secs(120));
    let outputs = replica.consume("out");
    assert_eq!(outputs.len(), KEYS * PER_KEY, "one output per record");
    let per_key = counts_by_key(&outputs);
    assert_eq!(per_key.len(), KEYS);
    let expected: Vec<u64> = (1..=PER_KEY as u64).collect();
    for (key, counts) in per_key {
        assert_eq!(
            counts, expected,
            "key {key} counted once per record, in the order produced"
        );
    }
}
