//! Standby copies on Kafka: with `--standby-replicas 1` each of two replicas keeps a copy
//! of the state of the partition the other runs, so when one is killed the other takes
//! its partition over reading only what its copy lacked from the changelog, with every
//! record applied once and the state whole.

use std::time::Duration;

use crate::broker::Broker;
use crate::support::{Replica, counts_by_key, guest, temp_dir, wait_for};

/// Distinct keys, so the state holds this many values of [`VALUE_BYTES`].
const KEYS: usize = 4000;
const VALUE_BYTES: usize = 1000;

/// `rounds` values of every key, each naming its round.
fn values(rounds: std::ops::Range<usize>) -> Vec<String> {
    rounds
        .flat_map(|round| {
            (0..KEYS).map(move |k| {
                let padding = "x".repeat(VALUE_BYTES);
                serde_json::json!({ "k": format!("key{k:05}"), "round": round, "pad": padding })
                    .to_string()
            })
        })
        .collect()
}

/// The value of the counter `name` of function `table` on `replica`'s `/metrics`.
fn counter(replica: &Replica, name: &str) -> u64 {
    let (_, text) = replica.http_get("/metrics").expect("/metrics answers");
    let prefix = format!("streamfn_{name}_total{{function=\"table\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

#[test]
fn a_failover_to_a_standby_reads_only_what_its_copy_lacks() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let standby = ["--standby-replicas", "1"];
    let mut a = Replica::start_on_kafka(&dir.path().join("a"), &broker.address, &standby);
    let b = Replica::start_on_kafka(&dir.path().join("b"), &broker.address, &standby);
    let (a_id, b_id) = (a.id(), b.id());
    a.ok(&["topics", "create", "events", "--partitions", "2"]);
    a.deploy(
        &guest("test-table"),
        "table",
        &["--input", "events", "--output", "out"],
    );
    let owners = || crate::failover::owners(&b, "table");
    wait_for(
        Duration::from_secs(60),
        "each replica to run a partition",
        || {
            let owners: Vec<String> = owners().into_iter().map(|(_, o)| o).collect();
            (owners.contains(&a_id) && owners.contains(&b_id)).then_some(())
        },
    );
    a.produce("events", &values(0..3), &["--key-field", "k"]);
    b.wait_drained("table", Duration::from_secs(180));

    // b's copy of a's partition catches up with the changelog.
    let (a_partition, _) = owners()
        .into_iter()
        .find(|(_, owner)| *owner == a_id)
        .expect("a runs a partition");
    let copied = wait_for(Duration::from_secs(60), "b's copy to catch up", || {
        let (_, body) = b.http_get("/v1/deployments/table")?;
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        let copies = status["standby"].as_array()?.clone();
        copies
            .iter()
            .any(|c| c[0] == a_partition && c[1] == 0)
            .then_some(status)
    });
    let shown = b.ok(&["status", "table"]);
    assert!(
        shown.contains(&format!(
            "standby copies here: partitions {a_partition} (0 behind)"
        )),
        "{shown}\n{copied}"
    );
    let followed = counter(&b, "state_standby_records");
    assert!(
        followed > KEYS as u64,
        "b followed {followed} changelog records"
    );

    a.kill();
    wait_for(Duration::from_secs(60), "b to run every partition", || {
        owners()
            .iter()
            .all(|(_, owner)| *owner == b_id)
            .then_some(())
    });
    a = b;
    a.produce("events", &values(3..4), &["--key-field", "k"]);
    a.wait_drained("table", Duration::from_secs(180));
    let restored = counter(&a, "state_restored_records");
    assert!(
        restored < 100,
        "the takeover read {restored} changelog records; the copy had {followed}"
    );

    // Every value applied once, and the state holds each key's last.
    for (key, counts) in counts_by_key(&a.consume("out")) {
        assert_eq!(counts, [1, 2, 3, 4], "{key}");
    }
    for key in ["key00000", "key01234", "key03999"] {
        let value = a.ok(&["state", "get", "table", key]);
        let value: serde_json::Value = serde_json::from_str(&value).expect("JSON");
        assert_eq!(value["round"], 3, "{key}");
    }
}
