//! Throughput of functions: the same handler compiled natively, run as a wasm component
//! by the dispatcher (state in memory), and run end to end on the embedded log (fetch,
//! dispatch, durable commit) on one partition and one worker, all in one process so the
//! numbers compare. Then the same functions end to end on four partitions with one worker
//! and with two (`workers`), a quiet function beside a busy one on one worker
//! (`fairness`), the same functions built for contract 0.1.0 beside 0.2.0 (`contract`),
//! the sandbox under other engine settings (`sandbox`), and the fraud
//! scorer at ten and a hundred times the events and customers (`scale`, the sizes taking
//! turns in each run), to see whether the cost per event grows with the work.
//! `RUST_LOG=streamfn_host::runner=debug` logs each pass of the runners to stderr.
//!
//! Run with `cargo bench -p streamfn-host --bench throughput` after `scripts/build`.
//! `STREAMFN_BENCH_EVENTS` sets the number of events (default 200000),
//! `STREAMFN_BENCH_PARTS` the parts to run (native, wasm, e2e, workers, fairness,
//! contract, sandbox, scale; all but sandbox and scale by default), `STREAMFN_BENCH_SCALE` the
//! multiples of the scale part (default `1,10`; `1,10,100` runs 10 M events when the
//! events are 100000), and `STREAMFN_BENCH_RUNS` the runs of each measure, of which the
//! median is shown with the range (default 3).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamfn::{Context, Event, Failure, Host, Level, Output};
use streamfn_host::dispatch::Batch;
use streamfn_host::log::embedded::LogConfig;
use streamfn_host::log::{Mode, NewTopic};
use streamfn_host::model::deployment::{DeploySpec, Deployment};
use streamfn_host::model::event::InputEvent;
use streamfn_host::model::record::Record;
use streamfn_host::replica::{Replica, Settings};
use streamfn_host::sandbox::{Engine, Tuning};
use streamfn_host::state::PartitionState;
use support::{Rates, Shared, measure, runs};

type Handler = fn(&Event, &mut Context) -> Result<(), Failure>;

/// A bare in-memory host for the native runs: what a handler costs without a sandbox.
#[derive(Default)]
struct NativeHost {
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    config: BTreeMap<String, String>,
    outputs: usize,
}

impl Host for NativeHost {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.state.get(key).cloned()
    }
    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.state.insert(key.to_vec(), value.to_vec());
    }
    fn delete(&mut self, key: &[u8]) {
        self.state.remove(key);
    }
    fn scan(&self, prefix: &[u8], _after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.state
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn send(&mut self, output: &Output) {
        std::hint::black_box(output);
        self.outputs += 1;
    }
    fn log(&mut self, _level: Level, _message: &str) {}
    fn config(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }
    fn schedule(&mut self, _key: &[u8], _at_ms: i64) {}
    fn cancel(&mut self, _key: &[u8]) {}
}

/// A workload: input topics with their records in order.
struct Workload {
    name: &'static str,
    guest: &'static str,
    native: Handler,
    inputs: Vec<(&'static str, Vec<Record>)>,
    outputs: Vec<&'static str>,
}

impl Workload {
    fn events(&self) -> Vec<InputEvent> {
        let mut events = Vec::new();
        for (topic, records) in &self.inputs {
            for (offset, record) in records.iter().enumerate() {
                events.push(InputEvent {
                    topic: (*topic).to_owned(),
                    offset: offset as u64,
                    record: record.clone(),
                });
            }
        }
        events
    }

    fn len(&self) -> usize {
        self.inputs.iter().map(|(_, r)| r.len()).sum()
    }

    /// The same workload run by the component `guest`.
    fn with_guest(&self, guest: &'static str) -> Workload {
        Workload {
            guest,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            ..*self
        }
    }
}

/// The demo's profiles and first `events` transactions as records, about 50 transactions
/// per customer as in the demo.
fn payments(events: usize) -> (Vec<Record>, Vec<Record>) {
    let data = streamfn_demo::generate::payments(3, (events / 50).max(1));
    let profiles = data
        .profiles
        .iter()
        .map(|v| support::record(v, "customer_id"))
        .collect();
    // Each value goes as soon as it is a record: at 10 M events both would not fit.
    let transactions = data
        .transactions
        .into_iter()
        .take(events)
        .map(|v| support::record(&v, "customer_id"))
        .collect();
    (profiles, transactions)
}

fn fraud_scorer_workload(profiles: Vec<Record>, transactions: Vec<Record>) -> Workload {
    Workload {
        name: "fraud-scorer",
        guest: "fraud_scorer",
        native: fraud_scorer::handle,
        inputs: vec![
            ("customer-profiles", profiles),
            ("transactions", transactions),
        ],
        outputs: vec!["fraud-alerts"],
    }
}

fn workloads(events: usize) -> Vec<Workload> {
    let (profiles, transactions) = payments(events);
    vec![
        Workload {
            name: "passthrough",
            guest: "passthrough",
            native: passthrough::handle,
            inputs: vec![("transactions", transactions.clone())],
            outputs: vec!["out"],
        },
        fraud_scorer_workload(profiles, transactions),
    ]
}

fn to_sdk_event(input: &InputEvent) -> Event {
    Event {
        topic: input.topic.clone(),
        partition: 0,
        offset: input.offset,
        timestamp_ms: input.record.timestamp_ms,
        stream_time_ms: input.record.timestamp_ms,
        key: input.record.key.clone(),
        value: input.record.value.clone(),
        headers: Vec::new(),
    }
}

/// The handler called natively, one event at a time, as the SDK's glue does in wasm.
fn native(workload: &Workload) -> Duration {
    let events: Vec<Event> = workload.events().iter().map(to_sdk_event).collect();
    let mut host = NativeHost::default();
    let started = Instant::now();
    for event in &events {
        let _ = (workload.native)(event, &mut Context::at(&mut host, event.timestamp_ms));
    }
    std::hint::black_box(host.outputs);
    started.elapsed()
}

fn guest_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build first",
        path.display()
    );
    path
}

/// The component run by the dispatcher over in-memory state, batches of 500.
fn sandboxed(engine: &Arc<Engine>, workload: &Workload) -> Duration {
    let bytes = std::fs::read(guest_path(workload.guest)).expect("read guest");
    let component = engine.load(&bytes).expect("load guest");
    let mut dispatcher = support::dispatcher(engine, component, &workload.outputs);
    let events = workload.events();
    let batches: Vec<Vec<InputEvent>> = events.chunks(500).map(<[InputEvent]>::to_vec).collect();
    let committed = Shared::default();
    let started = Instant::now();
    for chunk in batches {
        let expected = chunk.len();
        let batch = Batch {
            partition: 0,
            events: chunk,
            stream_time_ms: i64::MIN,
            retries_spent: None,
        };
        let state = PartitionState::new(Box::new(committed.clone()));
        let done = dispatcher.run(state, batch).expect("batch runs");
        assert_eq!(done.report.processed, expected);
        committed.apply(done.state.accepted.state);
    }
    started.elapsed()
}

/// A replica of the embedded log in a temporary directory, running on `workers`.
fn bench_replica(workers: usize) -> (tempfile::TempDir, Arc<Replica>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        workers,
        ..Settings::default()
    };
    let replica = Replica::open_with(
        dir.path(),
        Mode::Embedded(LogConfig::default()),
        "bench",
        &settings,
    )
    .expect("replica");
    (dir, replica)
}

/// Creates the inputs of `workload` with `partitions` and appends their records, spread
/// by key.
fn load(replica: &Replica, workload: &Workload, partitions: u32) {
    for (topic, records) in &workload.inputs {
        let topic_spec = NewTopic {
            name: (*topic).to_owned(),
            partitions,
            retention_ms: None,
            retention_bytes: None,
        };
        replica.log().create_topic(&topic_spec).expect("topic");
        append(replica, topic, records, partitions);
    }
}

fn append(replica: &Replica, topic: &str, records: &[Record], partitions: u32) {
    for chunk in records.chunks(5000) {
        let placed: Vec<(Option<u32>, Record)> = chunk
            .iter()
            .map(|r| ((partitions == 1).then_some(0), r.clone()))
            .collect();
        replica.log().append(topic, placed, None).expect("append");
    }
}

fn deploy(replica: &Replica, workload: &Workload) -> Deployment {
    let bytes = std::fs::read(guest_path(workload.guest)).expect("read guest");
    let sha256 = replica.upload(&bytes, None).expect("upload");
    let inputs: Vec<&str> = workload.inputs.iter().map(|(t, _)| *t).collect();
    replica
        .deploy(DeploySpec {
            outputs: workload.outputs.iter().map(|s| (*s).to_owned()).collect(),
            ..DeploySpec::new(workload.name, &sha256, &inputs)
        })
        .expect("deploy")
}

/// Input records `deployment` has committed, over all its partitions.
fn committed(replica: &Replica, deployment: &Deployment) -> usize {
    let partitions = replica.log().partition_status(deployment).expect("offsets");
    partitions.iter().map(|p| p.committed).sum::<u64>() as usize
}

/// The function deployed on a replica of the embedded log, its inputs spread by key over
/// `partitions`, run by `workers`: fetch, dispatch and a durable commit per pass. Events
/// per second from the first commit to the last, so that compiling the component on
/// deploy is left out.
fn end_to_end(workload: &Workload, partitions: u32, workers: usize) -> f64 {
    let (_dir, replica) = bench_replica(workers);
    load(&replica, workload, partitions);
    let deployment = deploy(&replica, workload);
    let total = workload.len();
    let mut first = None;
    loop {
        let done = committed(&replica, &deployment);
        if done > 0 && first.is_none() {
            first = Some((done, Instant::now()));
        }
        if done == total {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    replica.shutdown();
    let (at_first, since) = first.unwrap_or((0, Instant::now()));
    rate(total - at_first, since.elapsed())
}

/// How long a quiet function takes to handle `quiet` records on one worker, alone or
/// (`hot`) beside a function with a backlog on eight partitions; with the share of that
/// backlog still left when it is done.
fn fairness(hot: Option<&Workload>, quiet: &[Record]) -> (Duration, f64) {
    let (_dir, replica) = bench_replica(1);
    let quiet_fn = Workload {
        name: "quiet",
        guest: "passthrough",
        native: passthrough::handle,
        inputs: vec![("quiet-in", quiet[..1].to_vec())],
        outputs: vec!["quiet-out"],
    };
    load(&replica, &quiet_fn, 1);
    let quiet_dep = deploy(&replica, &quiet_fn);
    while committed(&replica, &quiet_dep) < 1 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let hot_dep = hot.map(|hot| {
        load(&replica, hot, 8);
        let dep = deploy(&replica, hot);
        while committed(&replica, &dep) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        (dep, hot.len())
    });
    let started = Instant::now();
    append(&replica, "quiet-in", quiet, 1);
    while committed(&replica, &quiet_dep) < quiet.len() + 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed();
    let left = hot_dep.map_or(0.0, |(dep, total)| {
        1.0 - committed(&replica, &dep) as f64 / total as f64
    });
    replica.shutdown();
    (took, left)
}

fn rate(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

fn main() {
    // `RUST_LOG=streamfn_host::runner=debug` shows each pass: its events and how long its
    // read, the commit beside it and its run took.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    // `cargo bench` passes `--bench`; nothing to parse.
    let events: usize = std::env::var("STREAMFN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    // `STREAMFN_BENCH_PARTS=e2e` (or another part; comma-separated) runs
    // only those parts.
    let parts = std::env::var("STREAMFN_BENCH_PARTS").ok();
    let wanted = |part: &str| match parts.as_deref() {
        Some(p) => p.split(',').any(|x| x == part),
        None => !matches!(part, "scale" | "sandbox"),
    };
    let engine = Engine::new(None).expect("engine");
    println!(
        "events per run: {events}; ev/s as median (range) of {} runs",
        runs()
    );
    println!(
        "{:<14} {:>24} {:>24} {:>24} {:>12}",
        "function", "native", "wasm", "end to end, 1 worker", "wasm/native"
    );
    for workload in workloads(events) {
        let n = workload.len();
        let part = |name: &str, run: &dyn Fn() -> f64| {
            if wanted(name) {
                measure(run)
            } else {
                Rates::SKIPPED
            }
        };
        let native = part("native", &|| rate(n, native(&workload)));
        let wasm = part("wasm", &|| rate(n, sandboxed(&engine, &workload)));
        let e2e = part("e2e", &|| end_to_end(&workload, 1, 1));
        let ratio = native.median / wasm.median;
        let ratio = if ratio.is_nan() {
            "-".to_owned()
        } else {
            format!("{ratio:.2}x")
        };
        println!("{:<14} {native} {wasm} {e2e} {ratio:>12}", workload.name);
    }
    if wanted("workers") {
        println!();
        println!("four partitions, end to end; runs of one and two workers alternate");
        println!(
            "{:<14} {:>24} {:>24} {:>12}",
            "function", "1 worker", "2 workers", "2 / 1"
        );
        for workload in workloads(events) {
            let mut one = Vec::new();
            let mut two = Vec::new();
            for _ in 0..runs() {
                one.push(end_to_end(&workload, 4, 1));
                two.push(end_to_end(&workload, 4, 2));
            }
            let (one, two) = (Rates::of(one), Rates::of(two));
            println!(
                "{:<14} {one} {two} {:>11.2}x",
                workload.name,
                two.median / one.median
            );
        }
    }
    if wanted("contract") {
        println!();
        println!(
            "the same function built for contract 0.1.0 and 0.2.0; the builds take turns in each run"
        );
        println!(
            "{:<14} {:>24} {:>24} {:>8} {:>24} {:>24} {:>8}",
            "function", "wasm 0.1.0", "wasm 0.2.0", "", "e2e 0.1.0", "e2e 0.2.0", ""
        );
        for workload in workloads(events) {
            let old_name = format!("{}_v0_1", workload.guest);
            let old = workload.with_guest(Box::leak(old_name.into_boxed_str()));
            let n = workload.len();
            let mut rates = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
            for _ in 0..runs() {
                rates[0].push(rate(n, sandboxed(&engine, &old)));
                rates[1].push(rate(n, sandboxed(&engine, &workload)));
                rates[2].push(end_to_end(&old, 1, 1));
                rates[3].push(end_to_end(&workload, 1, 1));
            }
            let [wasm_old, wasm_new, e2e_old, e2e_new] = rates.map(Rates::of);
            println!(
                "{:<14} {wasm_old} {wasm_new} {:>7.2}x {e2e_old} {e2e_new} {:>7.2}x",
                workload.name,
                wasm_new.median / wasm_old.median,
                e2e_new.median / e2e_old.median
            );
        }
    }
    if wanted("sandbox") {
        let base = Tuning::default();
        let variants = [
            ("as a replica runs", base.clone()),
            (
                "no fuel (epochs only)",
                Tuning {
                    fuel: false,
                    ..base.clone()
                },
            ),
            (
                "no epochs (fuel only)",
                Tuning {
                    epochs: false,
                    ..base.clone()
                },
            ),
            (
                "neither",
                Tuning {
                    fuel: false,
                    epochs: false,
                    ..base.clone()
                },
            ),
            (
                "opt level speed and size",
                Tuning {
                    opt_level: wasmtime::OptLevel::SpeedAndSize,
                    ..base.clone()
                },
            ),
            (
                "no guard pages",
                Tuning {
                    guard_pages: false,
                    ..base.clone()
                },
            ),
            (
                "on-demand allocator",
                Tuning {
                    pooling: false,
                    ..base.clone()
                },
            ),
            (
                "no copy-on-write images",
                Tuning {
                    copy_on_write: false,
                    ..base.clone()
                },
            ),
        ];
        println!();
        println!(
            "the sandbox's settings: wasm, state in memory; the settings take turns in each run"
        );
        println!(
            "{:<26} {:>24} {:>8} {:>24} {:>8}",
            "engine", "passthrough", "", "fraud-scorer", ""
        );
        let all = workloads(events);
        let engines: Vec<Arc<Engine>> = variants
            .iter()
            .map(|(_, tuning)| Engine::tuned(None, 16, tuning).expect("engine"))
            .collect();
        // rates[variant][workload] over the runs
        let mut rates = vec![vec![Vec::new(); all.len()]; engines.len()];
        for _ in 0..runs() {
            for (v, engine) in engines.iter().enumerate() {
                for (w, workload) in all.iter().enumerate() {
                    rates[v][w].push(rate(workload.len(), sandboxed(engine, workload)));
                }
            }
        }
        let rates: Vec<Vec<Rates>> = rates
            .into_iter()
            .map(|per| per.into_iter().map(Rates::of).collect())
            .collect();
        for ((name, _), row) in variants.iter().zip(&rates) {
            println!(
                "{name:<26} {} {:>7.2}x {} {:>7.2}x",
                row[0],
                row[0].median / rates[0][0].median,
                row[1],
                row[1].median / rates[0][1].median
            );
        }
    }
    if wanted("fairness") {
        let all = workloads(events);
        let hot = all.iter().find(|w| w.name == "fraud-scorer");
        let quiet: Vec<Record> = all[0].inputs[0].1.iter().take(1000).cloned().collect();
        let mut alone = Vec::new();
        let mut beside = Vec::new();
        let mut left = Vec::new();
        for _ in 0..runs() {
            alone.push(fairness(None, &quiet).0.as_secs_f64() * 1000.0);
            let (took, backlog) = fairness(hot, &quiet);
            beside.push(took.as_secs_f64() * 1000.0);
            left.push(backlog * 100.0);
        }
        let (alone, beside, left) = (Rates::of(alone), Rates::of(beside), Rates::of(left));
        println!();
        println!(
            "one worker: a quiet function handles 1000 records, alone and beside the fraud scorer with {events} events of backlog on 8 partitions"
        );
        println!(
            "quiet alone {:.0} ms ({:.0}-{:.0}); beside the hot function {:.0} ms ({:.0}-{:.0}), with {:.0}% ({:.0}-{:.0}%) of its backlog left",
            alone.median,
            alone.low,
            alone.high,
            beside.median,
            beside.low,
            beside.high,
            left.median,
            left.low,
            left.high
        );
    }
    if wanted("scale") {
        let multiples: Vec<usize> = std::env::var("STREAMFN_BENCH_SCALE")
            .ok()
            .map(|v| v.split(',').filter_map(|m| m.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 10]);
        println!();
        println!("fraud scorer end to end, one partition, one worker, 50 events per customer");
        println!(
            "{:>12} {:>10} {:>24} {:>18}",
            "events", "customers", "ev/s", "of the first's"
        );
        // The sizes take turns in each run, so a slow spell of the machine falls on all of
        // them alike, and each run's rates are compared with that run's first.
        let sized: Vec<(usize, Workload)> = multiples
            .iter()
            .map(|multiple| {
                let n = events * multiple;
                let (profiles, transactions) = payments(n);
                (n, fraud_scorer_workload(profiles, transactions))
            })
            .collect();
        let mut rates = vec![Vec::new(); sized.len()];
        let mut ratios = vec![Vec::new(); sized.len()];
        for _ in 0..runs() {
            let run: Vec<f64> = sized
                .iter()
                .map(|(_, workload)| end_to_end(workload, 1, 1))
                .collect();
            for (i, rate) in run.iter().enumerate() {
                rates[i].push(*rate);
                ratios[i].push(100.0 * rate / run[0]);
            }
        }
        for (((n, _), rates), ratios) in sized.iter().zip(rates).zip(ratios) {
            let ratio = Rates::of(ratios);
            println!(
                "{:>12} {:>10} {} {:>5.0}% ({:.0}-{:.0}%)",
                n,
                n / 50,
                Rates::of(rates),
                ratio.median,
                ratio.low,
                ratio.high
            );
        }
    }
}
