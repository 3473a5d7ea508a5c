//! The fraud scorer on a real Kafka broker, in one run on the same broker: throughput with
//! exactly-once and with at-least-once commits on one and two workers, beside a raw rdkafka
//! consume→produce pass-through (the limit any function host on this broker has), beside
//! the pass-through function on Streamfn (what the host's delivery costs with no work in
//! the function) and beside the same scorer written for Kafka Streams
//! (`benches/kafka-streams`, one and two stream threads); then end-to-end latency.
//!
//! Run with `cargo bench -p streamfn-host --bench kafka` after `scripts/build`. It starts
//! its own broker with `scripts/kafka` unless `STREAMFN_BENCH_BROKERS` names one, and builds
//! the Kafka Streams baseline with Maven (`STREAMFN_BENCH_STREAMS=0` leaves it out).
//! `STREAMFN_BENCH_EVENTS` sets the transactions of the throughput runs (default 1000000,
//! over one customer per 50; a run of far fewer can end in one commit, too soon to time),
//! `STREAMFN_BENCH_RUNS` the runs of each configuration
//! (default 3; median and range shown), `STREAMFN_BENCH_RATE` the records per second of the
//! latency runs (default 2000); `STREAMFN_BENCH_KAFKA_OPTIONS` (`key=value,...`)
//! passes librdkafka properties to every client of the run; `RUST_LOG` shows what the
//! replicas log.
//!
//! Throughput: the input is loaded first, then the clock runs from a group's first commit
//! until every input offset is committed; over the same span the bench counts the CPU
//! time of its own threads by part (the replica's workers and runner, librdkafka) and of
//! the broker and the Kafka Streams JVM, per 1,000 events. `/proc` counts it in
//! hundredths of a second, so that table wants the runs of a million events or more.
//! Kafka Streams and Streamfn must alert the same transactions with the same scores, or
//! the bench fails. Latency: records are produced
//! at a steady rate (2000 per second) for 5 s untimed, then 10 s timed, by a producer that
//! batches for up to 5 ms (`linger.ms=5`, the default of Kafka 4's producer and of
//! librdkafka; one request per record cannot keep up at tens of thousands per second on
//! a broker sharing two cores); a record's latency runs from just before it is
//! produced to the broker's append time of its output (output topics use
//! `LogAppendTime`), read with read_committed. The fraud scorer runs with
//! `alert_threshold=0` then, so that every transaction has an output.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
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
use streamfn_host::model::record::Record;
use streamfn_host::replica::{Replica, Settings};
use support::cpu::Sample;
use support::{Rates, runs};

const PARTITIONS: u32 = 4;
/// Records per second of the latency runs, unless `STREAMFN_BENCH_RATE` says.
const RATE: u64 = 2000;
const LATENCY_SECONDS: u64 = 10;
/// Seconds of steady input before the timed part, so that joining a group and starting a
/// function are not timed.
const WARM_UP_SECONDS: u64 = 5;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn guest(name: &str) -> Vec<u8> {
    let path = target_dir().join(format!("wasm32-wasip2/release/{name}.wasm"));
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

    /// The broker's process, when this run started it.
    fn pid(&self) -> Option<u32> {
        let dir = self.dir.as_ref()?;
        std::fs::read_to_string(dir.join("broker.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
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
        standby_replicas: 0,
    }
}

fn load(producer: &BaseProducer, topic: &str, records: &[Record]) {
    for record in records {
        send_record(producer, topic, None, record).expect("produce");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// The end offset of each partition of `topic`.
fn ends(cluster: &KafkaCluster, topic: &str) -> Vec<u64> {
    (0..PARTITIONS)
        .map(|p| cluster.watermarks(topic, p).expect("watermarks").1)
        .collect()
}

/// Whether `group` has committed every offset of `topic` up to `ends`.
fn caught_up(cluster: &KafkaCluster, group: &str, topic: &str, ends: &[u64]) -> bool {
    let committed = cluster
        .group_offsets(group, topic, PARTITIONS)
        .unwrap_or_default();
    ends.iter().enumerate().all(|(p, end)| {
        // A transactional commit leaves a marker after the last record.
        committed
            .get(p)
            .copied()
            .flatten()
            .is_some_and(|c| c + 1 >= *end)
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

/// Raw rdkafka: consume every record of `input`, produce it to `output`, commit. Returns
/// the time from the first record to the commit, and the CPU time spent in it by this
/// process and by `beside` (a part's name and a process).
fn pass_through(
    brokers: &str,
    input: &str,
    output: &str,
    group: &str,
    stop_after: Option<usize>,
    run_for: Option<Duration>,
    beside: &[(&'static str, u32)],
) -> (Duration, Sample) {
    let opts = options(brokers, false);
    let consumer: BaseConsumer = opts
        .config(&[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            // As a replica's consumer does: librdkafka's default would have it wait a
            // second whenever its queue of fetched records fills up.
            ("fetch.queue.backoff.ms", "10"),
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
    let mut started: Option<(Instant, Sample)> = None;
    let mut seen = 0;
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let limit = run_for.unwrap_or(Duration::from_secs(900));
    let deadline = Instant::now() + limit;
    loop {
        if stop_after.is_some_and(|n| seen >= n) {
            break;
        }
        if Instant::now() > deadline {
            if let Some(n) = stop_after {
                panic!(
                    "the pass-through read {seen} of {n} records of {input} within {} s",
                    limit.as_secs()
                );
            }
            break;
        }
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        started.get_or_insert_with(|| (Instant::now(), Sample::take(beside)));
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
    match started {
        Some((at, cpu)) => (at.elapsed(), Sample::take(beside).since(&cpu)),
        None => (Duration::ZERO, Sample::default()),
    }
}

/// The records per second of the latency runs.
fn rate() -> u64 {
    std::env::var("STREAMFN_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(RATE)
}

/// Produces one record per id at `rate()` per second, for the warm-up and then the timed
/// part, and returns when each record of the timed part was produced.
fn steady(
    brokers: &str,
    topic: &str,
    make: impl Fn(usize) -> (String, Record),
) -> BTreeMap<String, i64> {
    let producer: BaseProducer = options(brokers, false)
        .config(&[("acks", "all"), ("linger.ms", "5")])
        .create()
        .expect("producer");
    let mut sent = BTreeMap::new();
    let start = Instant::now();
    let rate = rate();
    let warm_up = (rate * WARM_UP_SECONDS) as usize;
    for i in 0..(rate * (WARM_UP_SECONDS + LATENCY_SECONDS)) as usize {
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (id, record) = make(i);
        if i >= warm_up {
            sent.insert(id, now_ms());
        }
        send_record(&producer, topic, None, &record).expect("produce");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    sent
}

/// A consumer of what is committed on every partition of `topic`, from the beginning;
/// `eof` says whether it reports reaching the end of a partition.
fn reader(brokers: &str, topic: &str, eof: &str) -> BaseConsumer {
    let consumer: BaseConsumer = options(brokers, false)
        .config(&[
            ("group.id", "bench-reader"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", eof),
        ])
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
    consumer
}

/// Latencies of outputs on `topic` whose id (picked by `id_of`) was sent at `sent`.
fn latencies(
    brokers: &str,
    topic: &str,
    sent: &BTreeMap<String, i64>,
    id_of: impl Fn(&Record) -> Option<String>,
) -> Vec<i64> {
    let consumer = reader(brokers, topic, "false");
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
        outputs: vec!["fraud-alerts".into()],
        config: threshold
            .map(|t| ("alert_threshold".to_owned(), t.to_owned()))
            .into_iter()
            .collect(),
        start,
        ..DeploySpec::new(name, component, &["transactions", "customer-profiles"])
    }
}

/// The pass-through function `name` (component `component`), copying `raw-in` to
/// `pt-out`.
fn pass_through_spec(name: &str, component: &str) -> DeploySpec {
    DeploySpec {
        outputs: vec!["pt-out".into()],
        config: [("to".to_owned(), "pt-out".to_owned())].into(),
        start: StartFrom::Earliest,
        ..DeploySpec::new(name, component, &["raw-in"])
    }
}

/// Where the bench's Kafka Streams baseline is built: its classes and its jars.
fn baseline_dir() -> PathBuf {
    target_dir().join("kafka-streams-bench")
}

/// Builds the Kafka Streams baseline with Maven, or says why it cannot.
fn build_baseline() -> Result<String, String> {
    let out = baseline_dir();
    let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kafka-streams/pom.xml");
    let built = std::process::Command::new("mvn")
        .args(["-B", "-q", "-f"])
        .arg(&pom)
        .arg(format!("-Dout={}", out.display()))
        .args([
            "compile",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
        ])
        .arg(format!("-DoutputDirectory={}", out.join("libs").display()))
        .output()
        .map_err(|e| format!("mvn does not run: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "mvn failed: {}{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    Ok(format!(
        "{}:{}/*",
        out.join("classes").display(),
        out.join("libs").display()
    ))
}

/// One throughput run: on which broker, in which directory, under which name (the
/// consumer group), over how many transactions.
struct Run<'a> {
    broker: &'a str,
    cluster: &'a KafkaCluster,
    /// The broker's process, for its CPU time, when this run started it.
    broker_pid: Option<u32>,
    /// The input the run is timed on, and its end offsets, loaded before the runs.
    input: &'static str,
    ends: &'a [u64],
    dir: PathBuf,
    name: String,
    total: usize,
}

/// What a throughput run measured: events per second, the time from its start to its
/// first commit, and the events and CPU time (by part) of its timed part.
struct Timed {
    rate: f64,
    startup: Duration,
    events: u64,
    cpu: Sample,
}

/// The parts of a run's CPU time, as `Sample` names them, and their column headings.
const CPU_PARTS: [(&str, &str); 6] = [
    ("workers", "workers"),
    ("runner", "runner"),
    ("librdkafka", "librdkafka"),
    ("other", "other"),
    ("broker", "broker"),
    ("baseline", "Streams"),
];

/// Prints where each configuration's CPU time went per 1,000 events (ms, the median of
/// each part over its runs), and how many cores its runs kept busy.
fn print_cpu(rows: &[(&str, &[Timed])]) {
    println!(
        "\nCPU time per 1,000 events, ms (median of the runs); cores busy over the timed part"
    );
    print!("{:<44}", "run");
    for (_, heading) in CPU_PARTS {
        print!(" {heading:>10}");
    }
    println!(" {:>10} {:>6}", "total", "cores");
    let median = |values: Vec<f64>| Rates::of(values).median;
    for (label, runs) in rows {
        let per_event = |seconds: &dyn Fn(&Sample) -> f64| {
            median(
                runs.iter()
                    .map(|t| 1e6 * seconds(&t.cpu) / t.events.max(1) as f64)
                    .collect(),
            )
        };
        print!("{label:<44}");
        for (part, _) in CPU_PARTS {
            print!(" {:>10.2}", per_event(&|cpu| cpu.seconds(part)));
        }
        let cores = median(
            runs.iter()
                .map(|t| t.cpu.total() * t.rate / t.events.max(1) as f64)
                .collect(),
        );
        println!(" {:>10.2} {cores:>6.2}", per_event(&|cpu| cpu.total()));
    }
}

impl Run<'_> {
    /// Times the run as every run of the bench is: from the first commit of its group on
    /// its input until it has committed every offset, counting only what it
    /// committed after that first commit; `alive` says whether what runs it still does,
    /// and `beside` names a process whose CPU time counts as `baseline`. It asks the broker
    /// every 20 ms: asking more often costs the broker time the run would rather have.
    fn time(
        &self,
        began: Instant,
        alive: &mut dyn FnMut() -> Result<(), String>,
        beside: Option<u32>,
    ) -> Result<Timed, String> {
        let group = self.name.as_str();
        let processes: Vec<(&'static str, u32)> = self
            .broker_pid
            .map(|pid| ("broker", pid))
            .into_iter()
            .chain(beside.map(|pid| ("baseline", pid)))
            .collect();
        let mut first: Option<(Instant, u64, Sample)> = None;
        let deadline = began + Duration::from_secs(900);
        while !caught_up(self.cluster, group, self.input, self.ends) {
            if Instant::now() > deadline {
                return Err(format!("{group} did not catch up within 900 s"));
            }
            alive()?;
            if first.is_none() {
                let done = committed(self.cluster, group, self.input);
                if done > 0 {
                    first = Some((Instant::now(), done, Sample::take(&processes)));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let cpu_after = Sample::take(&processes);
        let (started, done_before, cpu_before) =
            first.unwrap_or_else(|| (began, 0, Sample::default()));
        let events = (self.total as u64).saturating_sub(done_before);
        if events == 0 {
            return Err(format!(
                "{group} committed all {} events before the bench saw a commit: too few \
                 to time (STREAMFN_BENCH_EVENTS)",
                self.total
            ));
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        Ok(Timed {
            rate,
            startup: started.duration_since(began),
            events,
            cpu: cpu_after.since(&cpu_before),
        })
    }
}

/// What a throughput configuration runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Job {
    /// The Streamfn fraud scorer.
    Fraud,
    /// The Kafka Streams fraud scorer.
    Streams,
    /// The Streamfn pass-through function, on the raw pass-through's topics.
    PassThrough,
}

/// A throughput run of the function `spec` deploys (its component `component`) on a
/// replica with `workers` workers.
fn streamfn_run(
    run: &Run<'_>,
    component: &[u8],
    spec: impl FnOnce(&str) -> DeploySpec,
    exactly_once: bool,
    workers: usize,
) -> Timed {
    let name = run.name.as_str();
    let settings = Settings {
        workers,
        ..Settings::default()
    };
    let replica = Replica::open_with(
        &run.dir,
        Mode::Kafka(options(run.broker, exactly_once)),
        "bench",
        &settings,
    )
    .expect("replica");
    let sha = replica.upload(component, None).expect("upload");
    let began = Instant::now();
    replica.deploy(spec(&sha)).expect("deploy");
    let timed = run.time(began, &mut || Ok(()), None).expect("caught up");
    // Replicas share deployments through the cluster: a function left deployed would
    // run again, on every later replica of the bench.
    replica.undeploy(name).expect("undeploy");
    replica.shutdown();
    timed
}

/// A throughput run of the Kafka Streams fraud scorer, its alerts sent to `output`.
fn streams_run(
    run: &Run<'_>,
    classpath: &str,
    guarantee: &str,
    threads: usize,
    output: &str,
) -> Result<Timed, String> {
    let dir = &run.dir;
    std::fs::create_dir_all(dir).expect("state dir");
    let log = dir.join("streams.log");
    let began = Instant::now();
    let mut child = std::process::Command::new("java")
        .args([
            "-Xmx2g",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
        ])
        .arg(classpath)
        .arg("dev.streamfn.baseline.FraudScorer")
        .args([
            run.broker,
            &run.name,
            guarantee,
            &threads.to_string(),
            output,
        ])
        .arg(dir.join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .map_err(|e| format!("java does not run: {e}"))?;
    let pid = child.id();
    let timed = run.time(
        began,
        &mut || match child.try_wait() {
            Ok(Some(status)) => Err(format!("Kafka Streams exited with {status}")),
            _ => Ok(()),
        },
        Some(pid),
    );
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let stop = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    timed.map_err(|e| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        format!(
            "{e}; its log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })
}

/// The alerts on `topic` for the transactions in `ids`: transaction id and score in
/// thousandths, as committed.
fn alerts(brokers: &str, topic: &str, ids: &HashSet<String>) -> BTreeSet<(String, i64)> {
    let consumer = reader(brokers, topic, "true");
    let mut found = BTreeSet::new();
    let mut ended = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ended.len() < PARTITIONS as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let Some(alert) = record_of(&message)
                    .value
                    .and_then(|v| serde_json::from_slice::<Value>(&v).ok())
                else {
                    continue;
                };
                let id = alert["transaction_id"].as_str().unwrap_or_default();
                if ids.contains(id) {
                    let score = (alert["score"].as_f64().unwrap_or(-1.0) * 1000.0).round() as i64;
                    found.insert((id.to_owned(), score));
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            _ => {}
        }
    }
    found
}

fn main() {
    // `RUST_LOG=info` (or a finer filter) shows what the replicas log.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let events: usize = std::env::var("STREAMFN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::tempdir().expect("temp dir");
    let broker = Broker::get(root.path());
    let cluster = KafkaCluster::connect(options(&broker.address, true)).expect("broker");
    // The test broker keeps 256 MB per partition; ten million transactions are more.
    let keep = ("retention.bytes", "-1");
    for topic in ["raw-in", "transactions", "customer-profiles"] {
        cluster
            .create_topic(topic, PARTITIONS, &[keep])
            .expect("topic");
    }
    for topic in ["raw-out", "pt-out", "fraud-alerts"] {
        cluster
            .create_topic(
                topic,
                PARTITIONS,
                &[keep, ("message.timestamp.type", "LogAppendTime")],
            )
            .expect("topic");
    }
    let data = streamfn_demo::generate::payments(9, (events / 50).max(1));
    let transactions: Vec<Record> = data
        .transactions
        .iter()
        .take(events)
        .map(|v| support::record(v, "customer_id"))
        .collect();
    let ids: HashSet<String> = data
        .transactions
        .iter()
        .take(events)
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    let profiles: Vec<Record> = data
        .profiles
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
    // `STREAMFN_BENCH_STREAMS=0` leaves out the Kafka Streams baseline.
    let baseline = match std::env::var("STREAMFN_BENCH_STREAMS").as_deref() {
        Ok("0") => None,
        _ => match build_baseline() {
            Ok(classpath) => Some(classpath),
            Err(why) => {
                println!("Kafka Streams baseline left out: {why}");
                None
            }
        },
    };
    println!(
        "events per throughput run: {} transactions over {} customers, {} runs; latency at {}/s for {LATENCY_SECONDS} s after {WARM_UP_SECONDS} s of warm-up",
        transactions.len(),
        profiles.len(),
        runs(),
        rate()
    );

    // Throughput, the runs of every configuration interleaved.
    let component = guest("fraud_scorer");
    let pass_component = guest("passthrough");
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n > 1 { "s" } else { "" });
    let modes: Vec<(bool, usize, &str)> = [true, false]
        .into_iter()
        .flat_map(|eos| [1, 2].map(move |n| (eos, n)))
        .map(|(eos, n)| {
            let mode = if eos { "exactly-once" } else { "at-least-once" };
            (eos, n, mode)
        })
        .collect();
    let mut configs: Vec<(String, Job, usize, bool)> = Vec::new();
    for &(eos, n, mode) in &modes {
        let label = format!("Streamfn, {mode}, {}", plural(n, "worker"));
        configs.push((label, Job::Fraud, n, eos));
        if baseline.is_some() {
            let label = format!("Kafka Streams, {mode}, {}", plural(n, "thread"));
            configs.push((label, Job::Streams, n, eos));
        }
    }
    // The pass-through function beside the raw one: what the host itself costs.
    for &(eos, n, mode) in &modes {
        let label = format!("Streamfn pass-through, {mode}, {}", plural(n, "worker"));
        configs.push((label, Job::PassThrough, n, eos));
    }
    let broker_pid = broker.pid();
    let broker_process: Vec<(&'static str, u32)> =
        broker_pid.map(|pid| ("broker", pid)).into_iter().collect();
    let input_ends = ends(&cluster, "transactions");
    let raw_ends = ends(&cluster, "raw-in");
    let mut raw_rates = Vec::new();
    let mut raw_timed = Vec::new();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut startups: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut timings: Vec<Vec<Timed>> = configs.iter().map(|_| Vec::new()).collect();
    let mut outputs: Vec<Vec<String>> = vec![Vec::new(); configs.len()];
    for run in 0..runs() {
        let (raw, cpu) = pass_through(
            &broker.address,
            "raw-in",
            "raw-out",
            &format!("bench-raw-{run}"),
            Some(transactions.len()),
            None,
            &broker_process,
        );
        let rate = transactions.len() as f64 / raw.as_secs_f64();
        raw_rates.push(rate);
        raw_timed.push(Timed {
            rate,
            startup: Duration::ZERO,
            events: transactions.len() as u64,
            cpu,
        });
        for (i, (_, job, n, eos)) in configs.iter().enumerate() {
            let name = format!("fraud-{i}-{run}");
            let (input, ends) = match job {
                Job::PassThrough => ("raw-in", &raw_ends),
                Job::Fraud | Job::Streams => ("transactions", &input_ends),
            };
            let this = Run {
                broker: &broker.address,
                cluster: &cluster,
                broker_pid,
                input,
                ends,
                dir: root.path().join(&name),
                name: name.clone(),
                total: transactions.len(),
            };
            let timed = match job {
                Job::Streams => {
                    let output = format!("fraud-alerts-{name}");
                    cluster
                        .create_topic(&output, PARTITIONS, &[])
                        .expect("topic");
                    let guarantee = if *eos {
                        "exactly_once_v2"
                    } else {
                        "at_least_once"
                    };
                    let classpath = baseline.as_deref().expect("built");
                    let timed = streams_run(&this, classpath, guarantee, *n, &output);
                    outputs[i].push(output);
                    timed.unwrap_or_else(|e| panic!("{e}"))
                }
                Job::Fraud => {
                    outputs[i].push("fraud-alerts".to_owned());
                    let spec = |sha: &str| fraud_spec(&name, sha, None, StartFrom::Earliest);
                    streamfn_run(&this, &component, spec, *eos, *n)
                }
                Job::PassThrough => {
                    let spec = |sha: &str| pass_through_spec(&name, sha);
                    streamfn_run(&this, &pass_component, spec, *eos, *n)
                }
            };
            rates[i].push(timed.rate);
            startups[i].push(timed.startup.as_secs_f64());
            timings[i].push(timed);
        }
    }
    let raw = Rates::of(raw_rates);
    let raw_label = "rdkafka pass-through (at least once)";
    println!("\nthroughput, events/s: median (range) of {} runs", runs());
    println!(
        "{:<44} {:>24} {:>10} {:>18}",
        "run", "events/s", "of raw", "start-up s"
    );
    println!("{:<44} {raw} {:>10} {:>18}", raw_label, "100%", "-");
    let reference = alerts(&broker.address, "fraud-alerts", &ids);
    for (i, (label, job, ..)) in configs.iter().enumerate() {
        let r = Rates::of(rates[i].clone());
        let s = Rates::of(startups[i].clone());
        println!(
            "{label:<44} {r} {:>9.0}% {:>18}",
            100.0 * r.median / raw.median,
            format!("{:.1} ({:.1}-{:.1})", s.median, s.low, s.high)
        );
        if *job == Job::Streams {
            for topic in &outputs[i] {
                let theirs = alerts(&broker.address, topic, &ids);
                assert!(
                    theirs == reference,
                    "{label} alerted {} transactions and Streamfn {}; {} differ",
                    theirs.len(),
                    reference.len(),
                    theirs.symmetric_difference(&reference).count()
                );
            }
        }
    }
    println!(
        "alerts: {} in every run{}",
        reference.len(),
        if baseline.is_some() {
            ", the same transactions with the same scores from Streamfn and Kafka Streams"
        } else {
            ""
        }
    );

    let mut cpu_rows: Vec<(&str, &[Timed])> = vec![(raw_label, &raw_timed)];
    for (i, (label, ..)) in configs.iter().enumerate() {
        cpu_rows.push((label, &timings[i]));
    }
    print_cpu(&cpu_rows);

    // Latency, after the throughput runs, as it adds transactions to the input.
    println!("\nlatency at {}/s, ms", rate());
    println!("{:<44} {:>10} {:>10}", "run", "p50", "p99");
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
                    Some(Duration::from_secs(WARM_UP_SECONDS + LATENCY_SECONDS + 8)),
                    &[],
                )
            })
        };
        std::thread::sleep(Duration::from_secs(1));
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
        "{:<44} {:>10} {:>10}",
        "rdkafka pass-through (at least once)",
        percentile(&raw_latency, 0.5),
        percentile(&raw_latency, 0.99)
    );
    for exactly_once in [true, false] {
        let mode = if exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        };
        let replica = Replica::open(
            &root.path().join(mode),
            Mode::Kafka(options(&broker.address, exactly_once)),
            "bench",
        )
        .expect("replica");
        let sha = replica.upload(&component, None).expect("upload");
        let live = format!("fraud-{mode}-latency");
        replica
            .deploy(fraud_spec(&live, &sha, Some("0"), StartFrom::Latest))
            .expect("deploy");
        std::thread::sleep(Duration::from_secs(1));
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
        replica.undeploy(&live).expect("undeploy");
        replica.shutdown();
        drop(replica);
        println!(
            "{:<44} {:>10} {:>10}   {} of {} outputs timed",
            format!("Streamfn fraud-scorer, {mode}"),
            percentile(&latency, 0.5),
            percentile(&latency, 0.99),
            latency.len(),
            sent.len(),
        );
    }
}
