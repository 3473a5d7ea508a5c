//! The Streamfn demo: starts a replica on the embedded log with the real `fnctl`, deploys
//! the example functions, feeds them synthetic traffic with planted fraud, error bursts
//! and user commands that do not apply, waits for their outputs and prints what they
//! found, with one lookup of the user service's read model. `streamfn-demo orders`
//! does the same with the shop's order pipeline on Avro through a schema registry, with
//! planted invalid orders.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use streamfn_demo::generate::{self, Dataset};
use streamfn_demo::orders;
use streamfn_demo::replica::Replica;
use streamfn_demo::topology;

/// Partitions of every demo topic.
const PARTITIONS: u32 = 4;

struct Options {
    fnctl: PathBuf,
    guests: PathBuf,
    scale: usize,
    seed: u64,
    keep: Option<PathBuf>,
    /// The order pipeline's demo, with the schema registry at this URL.
    orders: Option<String>,
    schemas: PathBuf,
}

fn options() -> Result<Options> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .context("the demo binary has no directory")?
        .to_path_buf();
    let mut options = Options {
        fnctl: exe_dir.join("fnctl"),
        guests: exe_dir.join("../wasm32-wasip2/release"),
        scale: 200,
        seed: 7,
        keep: None,
        orders: None,
        schemas: exe_dir.join("../../guests/order-validator/schemas"),
    };
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("orders") {
        args.next();
        options.orders = Some(String::new());
    }
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--schema-registry" if options.orders.is_some() => options.orders = Some(value()?),
            "--schemas" => options.schemas = value()?.into(),
            "--fnctl" => options.fnctl = value()?.into(),
            "--guests" => options.guests = value()?.into(),
            "--scale" => options.scale = value()?.parse().context("--scale takes a number")?,
            "--seed" => options.seed = value()?.parse().context("--seed takes a number")?,
            "--keep" => options.keep = Some(value()?.into()),
            "--help" | "-h" => {
                println!(
                    "usage: streamfn-demo [--scale CUSTOMERS] [--seed N] [--keep DATA_DIR] [--fnctl PATH] [--guests DIR]\n       streamfn-demo orders --schema-registry URL [--schemas DIR] [same options]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }
    Ok(options)
}

fn write_jsonl(path: &Path, records: &[Value]) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for record in records {
        writeln!(file, "{record}")?;
    }
    file.flush()?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let options = options()?;
    for (what, path) in [("fnctl", &options.fnctl), ("guests", &options.guests)] {
        if !path.exists() {
            bail!(
                "{what} not found at {}: build with scripts/demo, or pass --{what}",
                path.display()
            );
        }
    }
    let work = match &options.keep {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("streamfn-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;
    let result = match options.orders.as_deref() {
        None => demo(&options, &work),
        Some("") => Err(anyhow::anyhow!(
            "the orders demo needs --schema-registry URL (scripts/demo-orders starts one)"
        )),
        Some(registry) => orders_demo(&options, registry, &work),
    };
    if options.keep.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn demo(options: &Options, work: &Path) -> Result<()> {
    println!(
        "Streamfn demo: the example functions on the embedded log ({} customers, seed {})",
        options.scale, options.seed
    );
    let replica = Replica::start(&options.fnctl, &work.join("data"), &[])?;
    for function in topology::set_up(&replica, &options.guests, PARTITIONS, &[])? {
        println!("  deployed {}", function.name);
    }

    let data = generate::generate(options.seed, options.scale);
    let started = Instant::now();
    let mut fed = 0;
    for feed in topology::payments(&data)
        .into_iter()
        .chain(topology::others(&data))
    {
        // Through a file, as a user would, so a large produce shows its progress.
        let file = work.join(format!("{}.jsonl", feed.topic));
        write_jsonl(&file, &feed.records)?;
        let mut args = vec!["produce", feed.topic, "--file", path_str(&file)?];
        args.extend(feed.produce_args());
        replica.run(&args)?;
        println!(
            "  produced {:>6} records to {}",
            feed.records.len(),
            feed.topic
        );
        fed += feed.records.len();
    }
    for function in topology::set_up_after_load(&replica, &options.guests, &[])? {
        println!("  deployed {} over its loaded inputs", function.name);
    }
    replica.wait_all_drained(Duration::from_secs(300))?;
    let elapsed = started.elapsed();

    let alerts = replica.consume("fraud-alerts")?;
    let error_alerts = replica.consume("error-alerts")?;
    let traces = replica.consume("correlated-traces")?;
    let recommendations = replica.consume("user-recommendations")?;
    let mut dead_letters = 0;
    // The user service and the sensor watcher dead-letter what was planted for them to.
    let planted_for = ["user-commands", "sensor-anomaly"];
    for function in topology::FUNCTIONS
        .iter()
        .filter(|f| !planted_for.contains(&f.name))
    {
        dead_letters += replica.consume(&format!("{}-dlq", function.name))?.len();
    }
    let sensor_alerts = replica.consume("sensor-alerts")?;
    let sensor_windows = replica.consume("sensor-windows")?.len();
    let late_readings = replica.consume("sensor-anomaly-dlq")?;
    let rejected = replica.consume("user-commands-dlq")?;
    let user_events = replica.consume("events-user")?.len();
    let lookup = data
        .user_commands
        .commands
        .iter()
        .rev()
        .find_map(|c| c["user_id"].as_str())
        .unwrap_or("u-0000")
        .to_owned();
    let view = replica.run(&["state", "get", "user-views", &lookup])?;
    let status = replica.run(&["status"])?;
    replica.stop();

    println!(
        "\nAll {fed} input records handled in {:.1} s.\n",
        elapsed.as_secs_f64()
    );
    let (frauds_caught, frauds) = report_fraud(&data, &alerts);
    let (bursts_caught, bursts) = report_errors(&data, &error_alerts, &traces);
    report_recommendations(&recommendations);
    let (rejected_planted, planted) = report_users(&data, &rejected, user_events, &lookup, &view);
    let sensors = report_sensors(&data, &sensor_alerts, sensor_windows, &late_readings);
    println!("\nReplica status:\n{status}");
    println!(
        "demo: fraud-alerts={} error-alerts={} recommendations={} dead-letters={} frauds-caught={frauds_caught}/{frauds} bursts-caught={bursts_caught}/{bursts} commands-rejected={rejected_planted}/{planted} spikes-caught={}/{} late-dead-lettered={}/{}",
        alerts.len(),
        error_alerts.len(),
        recommendations.len(),
        dead_letters,
        sensors.spikes_caught,
        sensors.spikes,
        sensors.late_caught,
        sensors.late
    );
    Ok(())
}

fn orders_demo(options: &Options, registry: &str, work: &Path) -> Result<()> {
    println!(
        "Streamfn orders demo: the order pipeline on Avro through the schema registry at {registry} ({} customers, seed {})",
        options.scale, options.seed
    );
    let replica = Replica::start(
        &options.fnctl,
        &work.join("data"),
        &["--schema-registry", registry],
    )?;
    topology::set_up_orders(&replica, &options.guests, &options.schemas, PARTITIONS)?;
    for function in topology::ORDER_FUNCTIONS {
        println!("  deployed {}", function.name);
    }
    let data = orders::orders(options.seed, options.scale);
    let started = Instant::now();
    topology::feed_orders(&replica, &data, &options.schemas, registry)?;
    println!("  produced {:>6} Avro orders to orders", data.orders.len());
    let out = topology::collect_orders(&replica, registry, Duration::from_secs(300))?;
    let elapsed = started.elapsed();
    let status = replica.run(&["status"])?;
    replica.stop();

    println!(
        "\nAll {} orders handled in {:.1} s.\n",
        data.orders.len(),
        elapsed.as_secs_f64()
    );
    let rejected: BTreeSet<&str> = out.rejected.iter().map(|(id, _)| id.as_str()).collect();
    let caught = data
        .planted
        .keys()
        .filter(|id| rejected.contains(id.as_str()))
        .count();
    println!(
        "Order validator: {} valid orders, {} rejected to order-validator-dlq with their reasons",
        out.valid.len(),
        out.rejected.len()
    );
    println!(
        "  caught {caught} of {} planted invalid orders",
        data.planted.len()
    );
    for (rule, _) in orders::RULES {
        if let Some((id, reason)) = out
            .rejected
            .iter()
            .find(|(id, _)| data.planted.get(id).is_some_and(|r| *r == rule))
        {
            println!("  e.g. {rule}: {id}: {reason}");
        }
    }
    println!(
        "\nInventory updater: stock of {} products, {} low",
        out.stock.len(),
        out.low_stock
    );
    if let Some((sku, sold, orders)) = out.stock.iter().max_by_key(|s| s.1) {
        println!("  e.g. {sku}: {sold} units sold in {orders} orders");
    }
    println!(
        "\nOrders per hour: {} customer-hours reported",
        out.hours.len()
    );
    if let Some(hour) = out.hours.first() {
        println!("  e.g. {hour}");
    }
    println!("\nReplica status:\n{status}");
    println!(
        "orders-demo: orders={} valid={} rejected={} invalid-caught={caught}/{} products={} low-stock={} hours={}",
        data.orders.len(),
        out.valid.len(),
        out.rejected.len(),
        data.planted.len(),
        out.stock.len(),
        out.low_stock,
        out.hours.len()
    );
    Ok(())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn value_of(record: &Value) -> Value {
    record["value"]
        .as_str()
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

/// Prints what the fraud scorer found; returns (planted frauds caught, planted frauds).
fn report_fraud(data: &Dataset, alerts: &[Value]) -> (usize, usize) {
    let flagged: BTreeSet<String> = alerts
        .iter()
        .filter_map(|a| value_of(a)["transaction_id"].as_str().map(str::to_owned))
        .collect();
    let caught = data.planted_frauds.intersection(&flagged).count();
    let false_alerts = flagged.difference(&data.planted_frauds).count();
    println!(
        "Fraud scorer: {} transactions, {} alerts",
        data.transactions.len(),
        alerts.len()
    );
    println!(
        "  caught {caught} of {} planted frauds ({:.0}%), {false_alerts} alerts on normal traffic",
        data.planted_frauds.len(),
        100.0 * caught as f64 / data.planted_frauds.len().max(1) as f64
    );
    for alert in alerts.iter().take(3) {
        let v = value_of(alert);
        println!(
            "  e.g. {} {} amount {} score {}: {}",
            v["customer_id"].as_str().unwrap_or("?"),
            v["transaction_id"].as_str().unwrap_or("?"),
            v["amount"],
            v["score"],
            v["factors"]
                .as_array()
                .map(|f| f
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    (caught, data.planted_frauds.len())
}

/// Prints what the log correlator found; returns (planted bursts caught, planted bursts).
fn report_errors(data: &Dataset, error_alerts: &[Value], traces: &[Value]) -> (usize, usize) {
    let alerted: BTreeSet<(String, i64)> = error_alerts
        .iter()
        .map(value_of)
        .filter_map(|v| {
            Some((
                v["service"].as_str()?.to_owned(),
                v["window_start_ms"].as_i64()?,
            ))
        })
        .collect();
    let planted: BTreeSet<(String, i64)> = data.planted_error_bursts.iter().cloned().collect();
    println!("\nLog correlator: {} log lines", data.service_logs.len());
    let detected = planted.intersection(&alerted).count();
    println!(
        "  {} error alerts; {detected} of {} planted error bursts detected",
        error_alerts.len(),
        planted.len()
    );
    for alert in error_alerts.iter().take(2) {
        let v = value_of(alert);
        println!(
            "  e.g. {} had {} errors in the 5 minutes from {}",
            v["service"].as_str().unwrap_or("?"),
            v["errors"],
            v["window_start_ms"]
        );
    }
    println!("  {} correlated traces with errors", traces.len());
    if let Some(trace) = traces.first() {
        let v = value_of(trace);
        println!(
            "  e.g. {} across {} ({} events, {} errors), root cause {}: {}",
            v["correlation_id"].as_str().unwrap_or("?"),
            v["services"]
                .as_array()
                .map(|s| s
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" -> "))
                .unwrap_or_default(),
            v["events"],
            v["errors"],
            v["root_cause"]["service"].as_str().unwrap_or("?"),
            v["root_cause"]["message"].as_str().unwrap_or("?")
        );
    }
    (detected, planted.len())
}

/// Prints what the user service did and one user's view, read from its state; returns
/// (planted commands rejected, planted commands).
fn report_users(
    data: &Dataset,
    rejected: &[Value],
    events: usize,
    user: &str,
    view: &str,
) -> (usize, usize) {
    let planted = &data.user_commands.planted;
    let rejected_ids: BTreeSet<String> = rejected
        .iter()
        .filter_map(|r| value_of(r)["command_id"].as_str().map(str::to_owned))
        .collect();
    let caught = planted.intersection(&rejected_ids).count();
    println!(
        "\nUser service: {} commands became {events} events; {} rejected, {caught} of {} planted",
        data.user_commands.commands.len(),
        rejected.len(),
        planted.len()
    );
    if let Some(letter) = rejected.first() {
        println!(
            "  e.g. {}: {}",
            value_of(letter)["command"].as_str().unwrap_or("?"),
            letter["headers"]["streamfn.failure.reason"]
                .as_str()
                .unwrap_or("?")
        );
    }
    println!(
        "  the read model of {user} (fnctl state get user-views {user}): {}",
        view.trim()
    );
    (caught, planted.len())
}

/// What the sensor watcher found of what was planted.
struct SensorScore {
    spikes_caught: usize,
    spikes: usize,
    late_caught: usize,
    late: usize,
}

/// The (device, sensor, time) of a reading or alert record.
fn reading_of(record: &Value) -> Option<(String, String, i64)> {
    let v = value_of(record);
    Some((
        v["device_id"].as_str()?.to_owned(),
        v["sensor"].as_str()?.to_owned(),
        v["timestamp_ms"].as_i64()?,
    ))
}

/// Prints what the sensor watcher found.
fn report_sensors(data: &Dataset, alerts: &[Value], windows: usize, late: &[Value]) -> SensorScore {
    let planted = &data.sensor_readings;
    let alerted: BTreeSet<_> = alerts.iter().filter_map(reading_of).collect();
    let dead: BTreeSet<_> = late.iter().filter_map(reading_of).collect();
    let score = SensorScore {
        spikes_caught: planted.spikes.intersection(&alerted).count(),
        spikes: planted.spikes.len(),
        late_caught: planted.too_late.intersection(&dead).count(),
        late: planted.too_late.len(),
    };
    let readings: usize = planted.topics.iter().map(|(_, r)| r.len()).sum();
    println!(
        "\nSensor watcher: {readings} readings on {} topics, {windows} 5-minute windows reported",
        planted.topics.len()
    );
    println!(
        "  {} alerts; {} of {} planted spikes caught; {} of {} readings that came after their window closed dead-lettered as late",
        alerts.len(),
        score.spikes_caught,
        score.spikes,
        score.late_caught,
        score.late
    );
    if let Some(alert) = alerts.first() {
        let v = value_of(alert);
        println!(
            "  e.g. {} {} read {} where {:.1} was expected",
            v["device_id"].as_str().unwrap_or("?"),
            v["sensor"].as_str().unwrap_or("?"),
            v["value"],
            v["expected"].as_f64().unwrap_or_default()
        );
    }
    score
}

fn report_recommendations(recommendations: &[Value]) {
    let users: BTreeSet<String> = recommendations
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect();
    println!(
        "\nRecommendation updater: {} updated recommendation lists for {} users",
        recommendations.len(),
        users.len()
    );
    if let Some(last) = recommendations.last() {
        let v = value_of(last);
        println!(
            "  e.g. {} gets {}",
            v["user_id"].as_str().unwrap_or("?"),
            v["items"]
                .as_array()
                .map(|s| s
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
}
