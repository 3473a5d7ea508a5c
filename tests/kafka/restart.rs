//! A broker crash and restart between two bursts loses nothing and repeats nothing, and
//! `fnctl status` shows the lag of the second burst going to 0.

use std::time::Duration;

use crate::broker::Broker;
use crate::support::{Replica, counts_exactly_once, guest, must, temp_dir};

#[test]
fn a_broker_crash_and_restart_between_bursts_loses_and_repeats_nothing_and_lag_drains() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let replica = Replica::start_on_kafka(&dir.path().join("replica"), &broker.address, &[]);
    replica.ok(&["topics", "create", "events", "--partitions", "3"]);
    let counter = guest("test-counter");
    replica.deploy(
        &counter,
        "counter",
        &["--input", "events", "--output", "out", "--batch", "20"],
    );
    let lines = |range: std::ops::Range<usize>| -> Vec<String> {
        range
            .map(|i| serde_json::json!({ "k": format!("k{}", i % 10), "i": i }).to_string())
            .collect()
    };
    let first = 20_000;
    replica.produce("events", &lines(0..first), &["--key-field", "k"]);
    // Between transactions: see Broker::crash.
    replica.wait_drained("counter", Duration::from_secs(120));
    broker.crash_and_restart();
    // The second burst: `fnctl status` shows the lag it makes and then shows it go to 0.
    let total = first + 10_000;
    // Lag 0 only counts once the whole burst is on the broker: before that it may only
    // mean the first burst is done.
    let produced = std::sync::atomic::AtomicBool::new(false);
    let lags = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut lags = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(180);
            loop {
                // Read before the status is asked, so the sample is taken after the burst.
                let all_in = produced.load(std::sync::atomic::Ordering::SeqCst);
                let out = replica.fnctl(&["status", "counter", "--format", "json"]);
                let status: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                if let Some(lag) = status[0]["lag"].as_u64() {
                    lags.push(lag);
                }
                if all_in && lags.iter().any(|&lag| lag > 0) && lags.last() == Some(&0) {
                    break lags;
                }
                if std::time::Instant::now() > deadline {
                    let log = replica.log_text();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    panic!(
                        "the lag did not rise and fall to 0 within 180 s: lags {lags:?}, status {status}, the replica's last log lines (newest first):\n{}",
                        tail.join("\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        replica.produce("events", &lines(first..total), &["--key-field", "k"]);
        produced.store(true, std::sync::atomic::Ordering::SeqCst);
        watcher.join().expect("lag watcher")
    });
    let peak = lags.iter().max().copied().unwrap_or(0);
    eprintln!("lag after the burst: peak {peak}, {} samples", lags.len());
    assert!(peak > 0 && lags.last() == Some(&0), "lags seen: {lags:?}");

    let counts = replica.sorted_values("out");
    must(counts_exactly_once(
        counts.iter().map(String::as_str),
        10,
        total,
    ));
}
