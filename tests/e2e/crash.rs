//! Exactly-once on the embedded log: a replica killed with SIGKILL at any moment and
//! started again produces every output exactly once and ends with the same state as a
//! run that was never interrupted.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, counts_exactly_once, guest, must, temp_dir, topology, wait_for};

const KEYS: usize = 40;
const EVENTS: usize = 200_000;

fn counter_input() -> Vec<String> {
    (0..EVENTS)
        .map(|i| format!("k{:02} {i}", (i * 7) % KEYS))
        .collect()
}

/// Records of the counter's input in one `fnctl produce` request.
const CHUNK: usize = 10_000;

/// The counter's input as `fnctl produce` lines, in chunks of [`CHUNK`].
fn counter_chunks() -> Vec<Vec<String>> {
    counter_input()
        .chunks(CHUNK)
        .map(|chunk| {
            // The counter reads the key from the line's first word.
            chunk
                .iter()
                .map(|l| {
                    serde_json::json!({ "k": l.split(' ').next().unwrap_or_default(), "line": l })
                        .to_string()
                })
                .collect()
        })
        .collect()
}

/// Creates the topics, produces the fraud scorer's input, and deploys the functions. The
/// counter's input comes while they run.
fn prepare(replica: &Replica) {
    for topic in ["events", "transactions", "customer-profiles"] {
        replica.ok(&["topics", "create", topic, "--partitions", "3"]);
    }
    let data = streamfn_demo::generate::generate(11, 60);
    for feed in topology::payments(&data) {
        must(feed.produce(replica));
    }
    // Small batches make many commits, so a kill lands between and inside them.
    replica.deploy(
        &guest("test-counter"),
        "counter",
        &["--input", "events", "--output", "out", "--batch", "20"],
    );
    let fraud = must(topology::function("fraud-scorer"));
    let mut args = fraud.topic_args();
    args.extend(["--batch", "20"]);
    replica.deploy(&guest(fraud.guest), "fraud", &args);
}

/// Produces `chunk` in one request, so the replica sees all of it at once.
fn produce_counter_chunk(replica: &Replica, chunk: &[String]) {
    let size = CHUNK.to_string();
    replica.produce(
        "events",
        chunk,
        &["--key-field", "k", "--batch-size", &size],
    );
}

struct Results {
    counts: Vec<String>,
    alerts: Vec<String>,
    state_entries: (Value, Value),
}

fn results(replica: &Replica) -> Results {
    let counter = replica.wait_drained("counter", Duration::from_secs(120));
    let fraud = replica.wait_drained("fraud", Duration::from_secs(120));
    Results {
        counts: replica.sorted_values("out"),
        alerts: replica.sorted_values("fraud-alerts"),
        state_entries: (
            counter["state_entries"].clone(),
            fraud["state_entries"].clone(),
        ),
    }
}

/// (committed, end) offsets summed over the function's partitions, read straight from
/// the admin API so that polling is quick.
fn committed(replica: &Replica, function: &str) -> Option<(u64, u64)> {
    let (_, body) = replica.http_get(&format!("/v1/deployments/{function}"))?;
    let status: Value = serde_json::from_str(&body).ok()?;
    let parts = status["partitions"].as_array()?.clone();
    let done: u64 = parts.iter().filter_map(|p| p["committed"].as_u64()).sum();
    let end: u64 = parts.iter().filter_map(|p| p["end"].as_u64()).sum();
    Some((done, end))
}

fn reference(root: &Path) -> Results {
    let replica = Replica::start(&root.join("reference"));
    prepare(&replica);
    for chunk in counter_chunks() {
        produce_counter_chunk(&replica, &chunk);
    }
    results(&replica)
}

#[test]
fn sigkill_mid_stream_then_restart_gives_every_output_exactly_once_and_the_same_state() {
    let dir = temp_dir();
    let expected = reference(dir.path());

    let data = dir.path().join("crashing");
    let mut replica = Replica::start(&data);
    prepare(&replica);
    let chunks = counter_chunks();
    let mut kills = 0;
    // Kill 0, 5 and 10 ms after a fifth, half and four fifths of the input is produced,
    // while the replica works through that chunk: a kill with input taken in but not yet
    // committed is a kill mid-stream.
    let kills_at = [
        (chunks.len() / 5, 0),
        (chunks.len() / 2, 5),
        (chunks.len() * 4 / 5, 10),
    ];
    for (i, chunk) in chunks.iter().enumerate() {
        produce_counter_chunk(&replica, chunk);
        if let Some((_, delay)) = kills_at.iter().find(|(after, _)| *after == i + 1) {
            std::thread::sleep(Duration::from_millis(*delay));
            let (done, end) = wait_for(Duration::from_secs(120), "the counter's status", || {
                committed(&replica, "counter")
            });
            replica.kill();
            if done < end {
                kills += 1;
            }
            replica = Replica::start(&data);
        }
    }
    assert!(
        kills >= 2,
        "the replica was killed mid-stream at least twice ({kills})"
    );
    let got = results(&replica);

    must(counts_exactly_once(
        got.counts.iter().map(String::as_str),
        KEYS,
        EVENTS,
    ));
    assert_eq!(got.counts, expected.counts);
    assert!(
        !expected.alerts.is_empty(),
        "the reference run raises fraud alerts"
    );
    assert_eq!(
        got.alerts, expected.alerts,
        "state-dependent outputs match the uninterrupted run"
    );
    assert_eq!(got.state_entries, expected.state_entries);
}
