//! The same functions written in each SDK's language, run by the dispatcher on one core
//! (batches of 100, fuel on, state in memory) over the same events: the `fnctl new`
//! template (a per-key counter) in Rust, JavaScript, Python and Go, and each port of an
//! example function beside its Rust original. Also reports each component's size, fuel
//! per event, and how long loading it takes compiled from scratch and from the
//! precompiled cache (what a deploy and a restart wait for).
//!
//! Run with `cargo bench -p streamfn-host --bench languages` after `scripts/build` and
//! `scripts/build-guests`. It builds the templates itself under `target/bench-projects`
//! (which needs the toolchains `fnctl build` needs). `STREAMFN_BENCH_EVENTS` sets the
//! events per run (default 20000), `STREAMFN_BENCH_RUNS` the runs (default 3; median and
//! range shown); `STREAMFN_BENCH_FUNCTIONS` (comma-separated: counter,
//! fraud-scorer, log-correlator, recommendation-updater) runs only those;
//! `STREAMFN_BENCH_COMPONENTS=LABEL=FILE.wasm,...` adds components of one's own, run over
//! the counter's events with output topic `out`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use streamfn_host::dispatch::Batch;
use streamfn_host::model::event::InputEvent;
use streamfn_host::sandbox::Engine;
use streamfn_host::state::PartitionState;
use streamfn_project::{self as project, Lang};
use support::Shared;

/// Events per call into the guest, as a busy partition has.
const BATCH: usize = 100;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A guest built by `scripts/build` or `scripts/build-guests`.
fn built_guest(name: &str) -> PathBuf {
    let path = target_dir().join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build and scripts/build-guests first",
        path.display()
    );
    path
}

/// The `fnctl new` template of `lang`, built with `fnctl build`'s code into
/// `target/bench-projects/counter-LANG/`. It is written afresh each run, so that its copy
/// of the SDK is this build's; what earlier builds left there (dependencies, virtualenvs,
/// caches) is kept.
fn template(lang: Lang, suffix: &str) -> PathBuf {
    let projects = target_dir().join("bench-projects");
    let dir = projects.join(format!("counter-{suffix}"));
    let fresh = projects.join(format!("counter-{suffix}.new"));
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).expect("an unfinished template removed");
    }
    project::create(&fresh, &format!("counter-{suffix}"), lang).expect("template written");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let kept = fresh.join(entry.file_name());
            if !kept.exists() {
                std::fs::rename(entry.path(), kept).expect("a build's leftovers kept");
            }
        }
        std::fs::remove_dir_all(&dir).expect("the old template removed");
    }
    std::fs::rename(&fresh, &dir).expect("the template in place");
    let out = projects.join(format!("counter-{suffix}.wasm"));
    eprintln!("building the {suffix} template");
    let options = project::BuildOptions {
        out: Some(out.clone()),
        ..Default::default()
    };
    project::build(&dir, &options, &|_| {}).expect("template builds");
    out
}

/// A function's input, in order, and the topics it may emit to.
struct Workload {
    name: &'static str,
    events: Vec<InputEvent>,
    outputs: Vec<&'static str>,
    builds: Vec<(&'static str, PathBuf)>,
}

fn events(inputs: &[(&str, &[Value], &str)], limit: usize) -> Vec<InputEvent> {
    let mut events = Vec::new();
    for (topic, values, key) in inputs {
        for (offset, value) in values.iter().take(limit).enumerate() {
            events.push(InputEvent {
                topic: (*topic).to_owned(),
                offset: offset as u64,
                record: support::record(value, key),
            });
        }
    }
    events
}

fn workloads(limit: usize, wanted: impl Fn(&str) -> bool) -> Vec<Workload> {
    let data = streamfn_demo::generate::generate(3, (limit / 40).max(1));
    let counter = || Workload {
        name: "counter (fnctl new)",
        events: events(
            &[("transactions", &data.transactions, "customer_id")],
            limit,
        ),
        outputs: vec!["out"],
        builds: vec![
            ("Rust", template(Lang::Rust, "rust")),
            ("JavaScript", template(Lang::Js, "js")),
            ("Python", template(Lang::Python, "python")),
            ("Go", template(Lang::Go, "go")),
        ],
    };
    let fraud = || Workload {
        name: "fraud-scorer",
        events: events(
            &[
                ("customer-profiles", &data.customer_profiles, "customer_id"),
                ("transactions", &data.transactions, "customer_id"),
            ],
            limit,
        ),
        outputs: vec!["fraud-alerts"],
        builds: vec![
            ("Rust", built_guest("fraud_scorer")),
            ("Go", built_guest("fraud-scorer-go")),
            ("JavaScript", built_guest("fraud-scorer-js")),
            ("Python", built_guest("fraud-scorer-python")),
        ],
    };
    let logs = || Workload {
        name: "log-correlator",
        events: events(&[("service-logs", &data.service_logs, "service")], limit),
        outputs: vec!["logs-by-trace", "error-alerts"],
        builds: vec![
            ("Rust", built_guest("log_correlator")),
            ("JavaScript", built_guest("log-correlator-js")),
        ],
    };
    let recs = || Workload {
        name: "recommendation-updater",
        events: events(&[("user-activity", &data.user_activity, "user_id")], limit),
        outputs: vec!["user-recommendations"],
        builds: vec![
            ("Rust", built_guest("recommendation_updater")),
            ("Python", built_guest("recommendation-updater-python")),
        ],
    };
    let all: [(&str, &dyn Fn() -> Workload); 4] = [
        ("counter", &counter),
        ("fraud-scorer", &fraud),
        ("log-correlator", &logs),
        ("recommendation-updater", &recs),
    ];
    let mut chosen: Vec<Workload> = all
        .into_iter()
        .filter(|(name, _)| wanted(name))
        .map(|(_, workload)| workload())
        .collect();
    if let Ok(components) = std::env::var("STREAMFN_BENCH_COMPONENTS") {
        chosen.push(Workload {
            name: "own components",
            events: events(
                &[("transactions", &data.transactions, "customer_id")],
                limit,
            ),
            outputs: vec!["out"],
            builds: components
                .split(',')
                .map(|c| {
                    let (label, path) = c.split_once('=').expect("LABEL=FILE.wasm");
                    (&*label.to_owned().leak(), PathBuf::from(path))
                })
                .collect(),
        });
    }
    chosen
}

/// One run over the workload's events: elapsed time and fuel burnt.
fn run(engine: &Arc<Engine>, bytes: &[u8], workload: &Workload) -> (Duration, u64) {
    let component = engine.load(bytes).expect("load guest");
    let mut dispatcher = support::dispatcher(engine, component, &workload.outputs);
    let committed = Shared::default();
    let mut fuel = 0;
    let started = Instant::now();
    for chunk in workload.events.chunks(BATCH) {
        let batch = Batch {
            partition: 0,
            events: chunk.to_vec(),
            stream_time_ms: i64::MIN,
            retries_spent: None,
        };
        let state = PartitionState::new(Box::new(committed.clone()));
        let done = dispatcher.run(state, batch).expect("batch runs");
        assert_eq!(done.report.processed, chunk.len());
        assert!(
            done.report.dead_letters.is_empty(),
            "{}: {:?}",
            workload.name,
            done.report.dead_letters.first().map(|d| &d.failure)
        );
        fuel += done.report.stats.fuel;
        committed.apply(done.state.accepted.state);
    }
    (started.elapsed(), fuel)
}

/// Time to load `bytes` on a new engine: compiled when `cache` is empty, else read back
/// from it (as a replica restarting, or a second deploy, does).
fn load_time(cache: &Path, bytes: &[u8]) -> Duration {
    let dir =
        cap_std::fs::Dir::open_ambient_dir(cache, cap_std::ambient_authority()).expect("cache dir");
    let engine = Engine::new(Some(dir)).expect("engine");
    let started = Instant::now();
    engine.load(bytes).expect("load guest");
    started.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let limit: usize = std::env::var("STREAMFN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let engine = Engine::new(None).expect("engine");
    let only = std::env::var("STREAMFN_BENCH_FUNCTIONS").ok();
    let workloads = workloads(limit, |name| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|o| o == name))
    });
    println!(
        "batches of {BATCH}, fuel on, one core; events/s as median (range) of {} runs",
        support::runs()
    );
    println!(
        "{:<24} {:<11} {:>9} {:>8} {:>24} {:>12} {:>9} {:>9}",
        "function", "language", "size MB", "events", "events/s", "fuel/event", "compile", "cached"
    );
    for workload in &workloads {
        for (lang, path) in &workload.builds {
            let bytes = std::fs::read(path).expect("read component");
            let cache = tempfile::tempdir().expect("temp dir");
            let compile = load_time(cache.path(), &bytes);
            let cached = load_time(cache.path(), &bytes);
            let n = workload.events.len();
            let fuel = std::cell::Cell::new(0);
            let rates = support::measure(&|| {
                let (took, used) = run(&engine, &bytes, workload);
                fuel.set(used);
                n as f64 / took.as_secs_f64()
            });
            println!(
                "{:<24} {:<11} {:>9.2} {:>8} {rates} {:>12.0} {:>8.2}s {:>8.3}s",
                workload.name,
                lang,
                bytes.len() as f64 / 1e6,
                n,
                fuel.get() as f64 / n as f64,
                compile.as_secs_f64(),
                cached.as_secs_f64()
            );
        }
    }
}
