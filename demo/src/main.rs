//! The Streamfn demo: starts a replica on the embedded log with the real `fnctl`, deploys
//! the three example functions, feeds them synthetic traffic with planted fraud and error
//! bursts, waits for their outputs and prints what they found.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use streamfn_demo::generate::{self, Dataset};

/// Partitions of every demo topic.
const PARTITIONS: &str = "4";

struct Options {
    fnctl: PathBuf,
    guests: PathBuf,
    scale: usize,
    seed: u64,
    keep: Option<PathBuf>,
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
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--fnctl" => options.fnctl = value()?.into(),
            "--guests" => options.guests = value()?.into(),
            "--scale" => options.scale = value()?.parse().context("--scale takes a number")?,
            "--seed" => options.seed = value()?.parse().context("--seed takes a number")?,
            "--keep" => options.keep = Some(value()?.into()),
            "--help" | "-h" => {
                println!(
                    "usage: streamfn-demo [--scale CUSTOMERS] [--seed N] [--keep DATA_DIR] [--fnctl PATH] [--guests DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }
    Ok(options)
}

/// A replica started for the demo, stopped when dropped.
struct Replica {
    fnctl: PathBuf,
    admin: String,
    child: Child,
}

impl Replica {
    fn start(fnctl: &Path, data_dir: &Path) -> Result<Replica> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let admin = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(data_dir.join("serve.log"))?;
        let child = Command::new(fnctl)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .arg("--admin-listen")
            .arg(&admin)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", fnctl.display()))?;
        let replica = Replica {
            fnctl: fnctl.to_path_buf(),
            admin: format!("http://{admin}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while replica.run(&["list"]).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the replica did not start; see {}",
                    data_dir.join("serve.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(replica)
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let output = Command::new(&self.fnctl)
            .args(args)
            .env("FNCTL_ADMIN", &self.admin)
            .stdin(Stdio::null())
            .output()
            .context("running fnctl")?;
        if !output.status.success() {
            bail!(
                "fnctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn consume(&self, topic: &str) -> Result<Vec<Value>> {
        let out = self.run(&["consume", topic, "--from-beginning", "--timeout", "1"])?;
        out.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .context("fnctl consume printed something that is not JSON")
            })
            .collect()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
    let result = demo(&options, &work);
    if options.keep.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn demo(options: &Options, work: &Path) -> Result<()> {
    println!(
        "Streamfn demo: three functions on the embedded log ({} customers, seed {})",
        options.scale, options.seed
    );
    let replica = Replica::start(&options.fnctl, work)?;
    for topic in [
        "transactions",
        "customer-profiles",
        "service-logs",
        "logs-by-trace",
        "user-activity",
    ] {
        replica.run(&["topics", "create", topic, "--partitions", PARTITIONS])?;
    }
    let guest = |name: &str| {
        options
            .guests
            .join(format!("{}.wasm", name.replace('-', "_")))
    };
    let fraud = guest("fraud-scorer");
    let logs = guest("log-correlator");
    let recs = guest("recommendation-updater");
    let deployments: [Vec<&str>; 4] = [
        vec![
            "deploy",
            path_str(&fraud)?,
            "--name",
            "fraud-scorer",
            "--input",
            "transactions",
            "--input",
            "customer-profiles",
            "--output",
            "fraud-alerts",
        ],
        vec![
            "deploy",
            path_str(&logs)?,
            "--name",
            "log-correlator",
            "--input",
            "service-logs",
            "--output",
            "logs-by-trace",
            "--output",
            "error-alerts",
        ],
        // The same component again, on the topic the first one re-keys by trace.
        vec![
            "deploy",
            path_str(&logs)?,
            "--name",
            "trace-correlator",
            "--input",
            "logs-by-trace",
            "--output",
            "correlated-traces",
        ],
        vec![
            "deploy",
            path_str(&recs)?,
            "--name",
            "recommendation-updater",
            "--input",
            "user-activity",
            "--output",
            "user-recommendations",
        ],
    ];
    for args in &deployments {
        replica.run(args)?;
        println!("  deployed {}", args[3]);
    }

    let data = generate::generate(options.seed, options.scale);
    let mut logs_in = data.service_logs.clone();
    logs_in.extend(data.closing_logs());
    let feeds: [(&str, &str, &[Value]); 4] = [
        ("customer-profiles", "customer_id", &data.customer_profiles),
        ("transactions", "customer_id", &data.transactions),
        ("service-logs", "service", &logs_in),
        ("user-activity", "user_id", &data.user_activity),
    ];
    let started = Instant::now();
    let mut fed = 0;
    for (topic, key, records) in feeds {
        let file = work.join(format!("{topic}.jsonl"));
        write_jsonl(&file, records)?;
        replica.run(&[
            "produce",
            topic,
            "--file",
            path_str(&file)?,
            "--key-field",
            key,
            "--timestamp-field",
            "timestamp_ms",
        ])?;
        println!("  produced {:>6} records to {topic}", records.len());
        fed += records.len();
    }
    wait_for_drain(&replica, Duration::from_secs(300))?;
    let elapsed = started.elapsed();

    let alerts = replica.consume("fraud-alerts")?;
    let error_alerts = replica.consume("error-alerts")?;
    let traces = replica.consume("correlated-traces")?;
    let recommendations = replica.consume("user-recommendations")?;
    let mut dead_letters = 0;
    for function in [
        "fraud-scorer",
        "log-correlator",
        "trace-correlator",
        "recommendation-updater",
    ] {
        dead_letters += replica.consume(&format!("{function}-dlq"))?.len();
    }
    let status = replica.run(&["status"])?;
    replica.stop();

    println!(
        "\nAll {fed} input records handled in {:.1} s.\n",
        elapsed.as_secs_f64()
    );
    report_fraud(&data, &alerts);
    report_errors(&data, &error_alerts, &traces);
    report_recommendations(&recommendations);
    println!("\nReplica status:\n{status}");
    println!(
        "demo: fraud-alerts={} error-alerts={} recommendations={} dead-letters={}",
        alerts.len(),
        error_alerts.len(),
        recommendations.len(),
        dead_letters
    );
    Ok(())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Waits until every function has read all its input, twice in a row (a function that
/// writes to its own input needs the second look).
fn wait_for_drain(replica: &Replica, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut quiet = 0;
    while quiet < 2 {
        if Instant::now() > deadline {
            bail!(
                "the functions did not catch up within {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        let statuses: Vec<Value> =
            serde_json::from_str(&replica.run(&["status", "--output", "json"])?)?;
        let lag: u64 = statuses.iter().filter_map(|s| s["lag"].as_u64()).sum();
        quiet = if lag == 0 { quiet + 1 } else { 0 };
    }
    Ok(())
}

fn value_of(record: &Value) -> Value {
    record["value"]
        .as_str()
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

fn report_fraud(data: &Dataset, alerts: &[Value]) {
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
}

fn report_errors(data: &Dataset, error_alerts: &[Value], traces: &[Value]) {
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
    println!(
        "  {} error alerts; {} of {} planted error bursts detected",
        error_alerts.len(),
        planted.intersection(&alerted).count(),
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
