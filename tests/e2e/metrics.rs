//! `/metrics` counts what happened: known traffic with known failures of every kind gives
//! exactly those numbers, read with a Prometheus text parser, and every metric the
//! Grafana dashboard in `ops/grafana` queries is in a real scrape.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value as Metric};

use crate::support::{Replica, guest, temp_dir, wait_for};

/// (function, guest, deploy flags, failing value, failure kind)
const FUNCTIONS: &[(&str, &str, &[&str], &str, &str)] = &[
    ("m-trap", "test-trap", &[], "trap", "trap"),
    (
        "m-fuel",
        "test-loop",
        &["--fuel", "2000000"],
        "loop",
        "out-of-fuel",
    ),
    (
        "m-time",
        "test-loop",
        &["--fuel", "1000000000000", "--timeout", "200"],
        "loop",
        "timeout",
    ),
    (
        "m-memory",
        "test-memory-bomb",
        &["--memory", "32"],
        "grow",
        "out-of-memory",
    ),
    (
        "m-output",
        "test-bad-output",
        &[],
        "undeclared",
        "output-denied",
    ),
    ("m-reject", "test-reject", &[], "reject", "rejected"),
    (
        "m-retry",
        "test-reject",
        &["--max-retries", "1"],
        "retry",
        "retry-exhausted",
    ),
];

const GOOD: usize = 30;
const BAD: usize = 2;

fn scrape(replica: &Replica) -> Scrape {
    let (status, body) = replica.http_get("/metrics").expect("/metrics answers");
    assert_eq!(status, 200);
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

fn value(sample: &Sample) -> f64 {
    match &sample.value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
        _ => f64::NAN,
    }
}

/// The sum of the samples named `metric` whose labels include `labels`.
fn total(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(value)
        .sum()
}

#[test]
fn counters_equal_the_traffic_and_its_failures() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    for (name, wasm, flags, bad, _) in FUNCTIONS {
        let input = format!("in-{name}");
        let output = format!("out-{name}");
        replica.ok(&["topics", "create", &input, "--partitions", "2"]);
        let wasm = guest(wasm);
        let to = format!("to={output}");
        let mut args = vec![
            "deploy",
            wasm.to_str().expect("utf-8"),
            "--name",
            name,
            "--input",
            &input,
            "--output",
            &output,
            "--config",
            &to,
        ];
        args.extend_from_slice(flags);
        replica.ok(&args);
        let mut lines: Vec<String> = (0..GOOD).map(|i| format!("good-{i}")).collect();
        lines.insert(7, bad.to_string());
        lines.insert(20, bad.to_string());
        replica.produce(&input, &lines, &["--key", "k"]);
    }
    for (name, ..) in FUNCTIONS {
        replica.wait_drained(name, Duration::from_secs(60));
    }

    let scrape = scrape(&replica);
    for (name, _, _, _, kind) in FUNCTIONS {
        let f = [("function", *name)];
        let records = (GOOD + BAD) as f64;
        assert_eq!(
            total(&scrape, "streamfn_records_in_total", &f),
            records,
            "{name} records in"
        );
        assert_eq!(
            total(&scrape, "streamfn_records_out_total", &f),
            GOOD as f64,
            "{name} records out"
        );
        assert_eq!(
            total(&scrape, "streamfn_dead_letters_total", &f),
            BAD as f64,
            "{name} dead letters"
        );
        assert_eq!(
            total(
                &scrape,
                "streamfn_failures_total",
                &[("function", name), ("kind", kind)]
            ),
            BAD as f64,
            "{name} {kind}"
        );
        assert_eq!(
            total(&scrape, "streamfn_failures_total", &f),
            BAD as f64,
            "{name}: no other kind"
        );
        assert_eq!(
            total(&scrape, "streamfn_consumer_lag_records", &f),
            0.0,
            "{name} lag"
        );
        assert_eq!(
            total(&scrape, "streamfn_committed_offset", &f),
            records,
            "{name} committed offsets"
        );
        assert_eq!(
            total(&scrape, "streamfn_assigned_partitions", &f),
            2.0,
            "{name} partitions"
        );
        assert!(
            total(&scrape, "streamfn_invocations_total", &f) >= 1.0,
            "{name} invocations"
        );
        assert!(
            total(&scrape, "streamfn_fuel_consumed_total", &f) > 0.0,
            "{name} fuel"
        );
        assert!(
            total(&scrape, "streamfn_batch_duration_seconds_count", &f) > 0.0,
            "{name} batch latency"
        );
    }
    assert_eq!(
        total(
            &scrape,
            "streamfn_state_entries",
            &[("function", "m-reject")]
        ),
        1.0
    );

    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/grafana/streamfn.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard).expect("the dashboard"))
            .expect("JSON");
    let scraped: BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("streamfn_") {
                    queried.insert(word.to_owned());
                }
            }
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    let restores_only_on_kafka = [
        "streamfn_state_restores_total",
        "streamfn_state_restored_records_total",
    ];
    for metric in &queried {
        if restores_only_on_kafka.contains(&metric.as_str()) {
            continue;
        }
        // The parser folds a histogram's `_bucket` series into the histogram's name.
        let histogram = metric.strip_suffix("_bucket").unwrap_or(metric);
        assert!(
            scraped.contains(metric.as_str()) || scraped.contains(histogram),
            "the dashboard queries {metric}, which /metrics lacks"
        );
    }
}

#[test]
fn an_idle_replica_reports_itself_and_a_deployed_function_has_every_failure_at_zero() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    let idle = scrape(&replica);
    let names: BTreeSet<&str> = idle.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in [
        "streamfn_build_info",
        "streamfn_functions",
        "streamfn_store_bytes",
        "streamfn_disk_free_bytes",
        "streamfn_store_io_errors_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            names.contains(family),
            "an idle replica exports {family}: {names:?}"
        );
    }
    assert_eq!(total(&idle, "streamfn_functions", &[]), 0.0);
    assert!(total(&idle, "streamfn_store_bytes", &[]) > 0.0);
    assert!(total(&idle, "streamfn_disk_free_bytes", &[]) > 0.0);
    assert!(total(&idle, "process_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(
        total(
            &idle,
            "streamfn_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    replica.deploy(
        &guest("test-counter"),
        "quiet",
        &["--input", "in", "--output", "out"],
    );
    let kinds = wait_for(Duration::from_secs(30), "the function's series", || {
        let scrape = scrape(&replica);
        let kinds: BTreeSet<String> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "streamfn_failures_total")
            .filter(|s| s.labels.get("function") == Some("quiet") && value(s) == 0.0)
            .filter_map(|s| s.labels.get("kind").map(str::to_owned))
            .collect();
        (kinds.len() >= 8).then_some((kinds, total(&scrape, "streamfn_functions", &[])))
    });
    assert_eq!(kinds.1, 1.0);
    for kind in [
        "trap",
        "out-of-fuel",
        "out-of-memory",
        "timeout",
        "output-denied",
        "rejected",
        "retry-exhausted",
    ] {
        assert!(
            kinds.0.contains(kind),
            "a zero series of {kind}: {:?}",
            kinds.0
        );
    }
}
