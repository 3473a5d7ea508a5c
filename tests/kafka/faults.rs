//! Faults while a function with state runs on Kafka: the broker gone for 30 s between bursts,
//! and the replica killed ten times at random moments. Read with read_committed, every
//! output is there exactly once, and the state the function kept is right.

use std::time::Duration;

use crate::broker::Broker;
use crate::support::{Replica, counts_exactly_once, guest, must, temp_dir};

const KEYS: usize = 20;

/// Counter input lines: JSON whose `k` field becomes the record key.
fn events(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| serde_json::json!({ "k": format!("k{:02}", i % KEYS), "i": i }).to_string())
        .collect()
}

/// Creates the input and deploys the counter, which keeps a count per key in state.
fn set_up(replica: &Replica) {
    replica.ok(&["topics", "create", "events", "--partitions", "3"]);
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "events", "--output", "out", "--batch", "50"],
    );
}

/// Checks the outputs and the state once `total` events are handled.
fn exactly_once(replica: &Replica, total: usize) {
    replica.wait_drained("counter", Duration::from_secs(180));
    let counts = replica.sorted_values("out");
    must(counts_exactly_once(
        counts.iter().map(String::as_str),
        KEYS,
        total,
    ));
    // The state is counted on the replica that runs the partitions, once it has them.
    let id = replica.id();
    let mut last = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some((_, body)) = replica.http_get("/v1/deployments/counter") {
            let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let all = status["partitions"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["owner"] == id.as_str()));
            if all {
                break status;
            }
            last = body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not run every partition within 60 s: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        status["state_entries"].as_u64(),
        Some(KEYS as u64),
        "one count per key in state: {status}"
    );
    // The state holds the last count of each key: one more event per key counts on.
    let more: Vec<String> = (0..KEYS)
        .map(|k| serde_json::json!({ "k": format!("k{k:02}"), "i": total + k }).to_string())
        .collect();
    replica.produce("events", &more, &["--key-field", "k"]);
    replica.wait_drained("counter", Duration::from_secs(120));
    let counts = replica.sorted_values("out");
    must(counts_exactly_once(
        counts.iter().map(String::as_str),
        KEYS,
        total + KEYS,
    ));
}

#[test]
fn the_broker_gone_for_thirty_seconds_between_bursts_loses_and_repeats_nothing() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let replica = Replica::start_on_kafka(&dir.path().join("replica"), &broker.address, &[]);
    set_up(&replica);
    let first = 10_000;
    replica.produce("events", &events(0..first), &["--key-field", "k"]);
    // Between transactions: see Broker::crash.
    replica.wait_drained("counter", Duration::from_secs(120));
    broker.crash();
    std::thread::sleep(Duration::from_secs(30));
    broker.start_again();
    let total = first + 5_000;
    replica.produce("events", &events(first..total), &["--key-field", "k"]);
    exactly_once(&replica, total);
}

/// A tiny deterministic generator for the moments of the kills.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_replica_killed_ten_times_at_random_moments_loses_and_repeats_nothing() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let data = dir.path().join("replica");
    let mut replica = Replica::start_on_kafka(&data, &broker.address, &[]);
    set_up(&replica);
    let total = 30_000;
    let brokers = broker.address.clone();
    let producer = std::thread::spawn(move || {
        // Straight to Kafka, so the kills do not stop the traffic.
        for chunk in events(0..total).chunks(1000) {
            let mut child = std::process::Command::new(crate::support::fnctl_path())
                .args([
                    "produce",
                    "events",
                    "--key-field",
                    "k",
                    "--brokers",
                    &brokers,
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("fnctl produce");
            {
                use std::io::Write as _;
                let mut stdin = child.stdin.take().expect("stdin");
                stdin
                    .write_all((chunk.join("\n") + "\n").as_bytes())
                    .expect("write");
            }
            assert!(child.wait().expect("produce ends").success(), "produced");
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let mut rng = Rng(0x0bad_5eed);
    for kill in 0..10 {
        std::thread::sleep(Duration::from_millis(500 + rng.below(2500)));
        replica.kill();
        eprintln!("kill {kill}");
        replica = Replica::start_on_kafka(&data, &broker.address, &[]);
    }
    producer.join().expect("the producer");
    exactly_once(&replica, total);
}
