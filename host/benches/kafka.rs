//! The fraud scorer on a real Kafka broker, in one run on the same broker: throughput and
//! end-to-end latency with exactly-once and with at-least-once commits, beside a raw
//! rdkafka consume→produce pass-through, the limit any function host on this broker has.
//!
//! Run with `cargo bench -p streamfn-host --bench kafka` after `scripts/build`. It starts
//! its own broker with `scripts/kafka` unless `STREAMFN_BENCH_BROKERS` names one.
//! `STREAMFN_BENCH_EVENTS` sets the events of the throughput runs (default 100000);
//! `STREAMFN_BENCH_KAFKA_OPTIONS` (`key=value,...`) passes librdkafka properties to every
//! client of the run.
//!
//! Throughput: the input is loaded first, then the clock runs from the start of
//! consuming until every input offset is committed. Latency: records are produced at a
//! steady 2000 per second for 10 s; a record's latency runs from just before it is
//! produced to the broker's append time of its output (output topics use
//! `LogAppendTime`), read with read_committed. The fraud scorer runs with
//! `alert_threshold=0` then, so that every transaction has an output.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use streamfn_host::log::Mode;
use streamfn_host::log::kafka::{KafkaCluster, KafkaOptions, record_of, send_record};
use streamfn_host::model::clock::now_ms;
use streamfn_host::model::deployment::{DeploySpec, StartFrom};
use streamfn_host::model::limits::Limits;
use streamfn_host::model::record::Record;
use streamfn_host::replica::Replica;

const PARTITIONS: u32 = 4;
const RATE: u64 = 2000;
const LATENCY_SECONDS: u64 = 10;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka")
}

fn guest(name: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run scripts/build first", path.display()))
}

/// The broker, stopped when dropped if this run started it.
struct Broker {
    address: String,
    dir: Option<PathBuf>,
}

impl Broker {
    fn get(root: &Path) -> Broker {
        if let Ok(address) = std::env::var("STREAMFN_BENCH_BROKERS") {
            return Broker { address, dir: None };
        }
        let dir = root.join("kafka");
        let output = std::process::Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("scripts/kafka runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Broker {
            address: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            dir: Some(dir),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::process::Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(dir)
                .output();
        }
    }
}

fn options(brokers: &str, exactly_once: bool) -> KafkaOptions {
    // librdkafka properties for every client of the run, e.g. `fetch.wait.max.ms=5`.
    let properties = std::env::var("STREAMFN_BENCH_KAFKA_OPTIONS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    KafkaOptions {
        brokers: brokers.to_owned(),
        properties,
        exactly_once,
    }
}

fn load(producer: &BaseProducer, topic: &str, records: &[Record]) {
    for record in records {
        send_record(producer, topic, None, record).expect("produce");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// Whether `group` has committed every offset of `topic`.
fn caught_up(cluster: &KafkaCluster, group: &str, topic: &str) -> bool {
    let committed = cluster
        .group_offsets(group, topic, PARTITIONS)
        .unwrap_or_default();
    (0..PARTITIONS).all(|p| {
        let (_, end) = cluster.watermarks(topic, p).unwrap_or((0, 0));
        // A transactional commit leaves a marker after the last record.
        committed
            .get(p as usize)
            .copied()
            .flatten()
            .is_some_and(|c| c + 1 >= end)
    })
}

/// Input records of `topic` whose offsets `group` has committed.
fn committed(cluster: &KafkaCluster, group: &str, topic: &str) -> u64 {
    cluster
        .group_offsets(group, topic, PARTITIONS)
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .sum()
}

/// Raw rdkafka: consume every record of `input`, produce it to `output`, commit.
fn pass_through(
    brokers: &str,
    input: &str,
    output: &str,
    group: &str,
    stop_after: Option<usize>,
    run_for: Option<Duration>,
) -> Duration {
    let opts = options(brokers, false);
    let consumer: BaseConsumer = opts
        .config(&[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            (
                "auto.offset.reset",
                if stop_after.is_some() {
                    "earliest"
                } else {
                    "latest"
                },
            ),
        ])
        .create()
        .expect("consumer");
    consumer.subscribe(&[input]).expect("subscribe");
    let producer: BaseProducer = opts
        .config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
        ])
        .create()
        .expect("producer");
    let mut started: Option<Instant> = None;
    let mut seen = 0;
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = run_for.map(|d| Instant::now() + d);
    loop {
        if stop_after.is_some_and(|n| seen >= n) || deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        started.get_or_insert_with(Instant::now);
        let record = record_of(&message);
        send_record(&producer, output, Some(message.partition() as u32), &record).expect("produce");
        offsets.insert(message.partition(), message.offset() + 1);
        seen += 1;
        if seen % 5000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let mut list = TopicPartitionList::new();
    for (p, o) in offsets {
        list.add_partition_offset(input, p, Offset::Offset(o))
            .expect("offset");
    }
    if list.count() > 0 {
        consumer.commit(&list, CommitMode::Sync).expect("commit");
    }
    started.map_or(Duration::ZERO, |s| s.elapsed())
}

/// Produces one record per id at `RATE` per second and returns when each was produced.
fn steady(
    brokers: &str,
    topic: &str,
    make: impl Fn(usize) -> (String, Record),
) -> BTreeMap<String, i64> {
    let producer: BaseProducer = options(brokers, false)
        .config(&[("acks", "all"), ("linger.ms", "0")])
        .create()
        .expect("producer");
    let mut sent = BTreeMap::new();
    let start = Instant::now();
    for i in 0..(RATE * LATENCY_SECONDS) as usize {
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (id, record) = make(i);
        sent.insert(id, now_ms());
        send_record(&producer, topic, None, &record).expect("produce");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    sent
}

/// Latencies of outputs on `topic` whose id (picked by `id_of`) was sent at `sent`.
fn latencies(
    brokers: &str,
    topic: &str,
    sent: &BTreeMap<String, i64>,
    id_of: impl Fn(&Record) -> Option<String>,
) -> Vec<i64> {
    let consumer: BaseConsumer = options(brokers, false)
        .config(&[
            ("group.id", "bench-latency"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
        ])
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle = Instant::now();
    while found.len() < sent.len()
        && Instant::now() < deadline
        && idle.elapsed() < Duration::from_secs(10)
    {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        idle = Instant::now();
        let appended = message.timestamp().to_millis().unwrap_or(0);
        if let Some(at) = id_of(&record_of(&message)).and_then(|id| sent.get(&id)) {
            found.push(appended - at);
        }
    }
    found.sort_unstable();
    found
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn fraud_spec(
    name: &str,
    component: &str,
    threshold: Option<&str>,
    start: StartFrom,
) -> DeploySpec {
    DeploySpec {
        name: name.to_owned(),
        component: component.to_owned(),
        inputs: vec!["transactions".into(), "customer-profiles".into()],
        outputs: vec!["fraud-alerts".into()],
        dlq: None,
        config: threshold
            .map(|t| ("alert_threshold".to_owned(), t.to_owned()))
            .into_iter()
            .collect(),
        limits: Limits::default(),
        start,
    }
}

fn main() {
    let events: usize = std::env::var("STREAMFN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let root = tempfile::tempdir().expect("temp dir");
    let broker = Broker::get(root.path());
    let cluster = KafkaCluster::connect(options(&broker.address, true)).expect("broker");
    let append_time = [("message.timestamp.type", "LogAppendTime")];
    for topic in ["raw-in", "transactions", "customer-profiles"] {
        cluster.create_topic(topic, PARTITIONS, &[]).expect("topic");
    }
    for topic in ["raw-out", "fraud-alerts"] {
        cluster
            .create_topic(topic, PARTITIONS, &append_time)
            .expect("topic");
    }
    let data = streamfn_demo::generate::generate(9, (events / 50).max(1));
    let transactions: Vec<Record> = data
        .transactions
        .iter()
        .take(events)
        .map(|v| support::record(v, "customer_id"))
        .collect();
    let profiles: Vec<Record> = data
        .customer_profiles
        .iter()
        .map(|v| support::record(v, "customer_id"))
        .collect();
    let producer: BaseProducer = options(&broker.address, false)
        .config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "20"),
            ("partitioner", "murmur2_random"),
        ])
        .create()
        .expect("producer");
    load(&producer, "raw-in", &transactions);
    load(&producer, "customer-profiles", &profiles);
    load(&producer, "transactions", &transactions);
    println!(
        "events per throughput run: {} transactions + {} profiles; latency at {RATE}/s for {LATENCY_SECONDS} s",
        transactions.len(),
        profiles.len()
    );
    println!(
        "{:<38} {:>12} {:>10} {:>10}",
        "run", "events/s", "p50 ms", "p99 ms"
    );

    // The limit: raw consume → produce → commit.
    let raw = pass_through(
        &broker.address,
        "raw-in",
        "raw-out",
        "bench-raw",
        Some(transactions.len()),
        None,
    );
    let raw_rate = transactions.len() as f64 / raw.as_secs_f64();
    let raw_latency = {
        let runner = {
            let brokers = broker.address.clone();
            std::thread::spawn(move || {
                pass_through(
                    &brokers,
                    "raw-in",
                    "raw-out",
                    "bench-raw-latency",
                    None,
                    Some(Duration::from_secs(LATENCY_SECONDS + 8)),
                )
            })
        };
        std::thread::sleep(Duration::from_secs(3));
        let sent = steady(&broker.address, "raw-in", |i| {
            let id = format!("raw-{i}");
            (
                id.clone(),
                Record {
                    timestamp_ms: now_ms(),
                    key: Some(id.clone().into_bytes()),
                    value: Some(id.into_bytes()),
                    headers: Vec::new(),
                },
            )
        });
        let _ = runner.join();
        latencies(&broker.address, "raw-out", &sent, |r| {
            r.value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    println!(
        "{:<38} {:>12.0} {:>10} {:>10}",
        "rdkafka pass-through (at least once)",
        raw_rate,
        percentile(&raw_latency, 0.5),
        percentile(&raw_latency, 0.99)
    );

    let component = guest("fraud_scorer");
    for exactly_once in [true, false] {
        let mode = if exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        };
        let data_dir = root.path().join(mode);
        let replica = Replica::open(
            &data_dir,
            Mode::Kafka(options(&broker.address, exactly_once)),
            "bench",
        )
        .expect("replica");
        let sha = replica.upload(&component, None).expect("upload");
        let name = format!("fraud-{mode}");
        let deployed = Instant::now();
        replica
            .deploy(fraud_spec(&name, &sha, None, StartFrom::Earliest))
            .expect("deploy");
        // As for the pass-through, the clock starts once records flow: at the first
        // commit, counting only the transactions committed after it.
        let mut first: Option<(Instant, u64)> = None;
        while !caught_up(&cluster, &name, "transactions") {
            if first.is_none() {
                let done = committed(&cluster, &name, "transactions");
                if done > 0 {
                    first = Some((Instant::now(), done));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (started, done_before) = first.unwrap_or((deployed, 0));
        let startup = started.duration_since(deployed);
        let rate =
            (transactions.len() as u64 - done_before) as f64 / started.elapsed().as_secs_f64();

        let live = format!("{name}-latency");
        replica
            .deploy(fraud_spec(&live, &sha, Some("0"), StartFrom::Latest))
            .expect("deploy");
        std::thread::sleep(Duration::from_secs(5));
        let template: Vec<Value> = data.transactions.iter().take(200).cloned().collect();
        let sent = steady(&broker.address, "transactions", |i| {
            let mut tx = template[i % template.len()].clone();
            let id = format!("{mode}-{i}");
            tx["id"] = Value::from(id.clone());
            tx["timestamp_ms"] = Value::from(now_ms());
            (id, support::record(&tx, "customer_id"))
        });
        let latency = latencies(&broker.address, "fraud-alerts", &sent, |r| {
            let alert: Value = serde_json::from_slice(r.value.as_deref()?).ok()?;
            alert["transaction_id"].as_str().map(str::to_owned)
        });
        replica.shutdown();
        drop(replica);
        println!(
            "{:<38} {:>12.0} {:>10} {:>10}   {:.0}% of the pass-through; {} of {} outputs timed; {:.1} s from deploy to the first commit",
            format!("fraud-scorer, {mode}"),
            rate,
            percentile(&latency, 0.5),
            percentile(&latency, 0.99),
            100.0 * rate / raw_rate,
            latency.len(),
            sent.len(),
            startup.as_secs_f64()
        );
    }
}
