//! Failover with a large state on a real Kafka broker, without and with standby copies
//! (`fnctl serve --standby-replicas 1`): how long after the SIGKILL of the replica that
//! runs a function's partition another replica has processed a record produced to it
//! just after the kill, and how long its restore from the changelog took, at what rate.
//!
//! Run with `cargo bench -p fnctl --bench failover` after `scripts/build`. It starts its
//! own broker with `scripts/kafka`. `STREAMFN_BENCH_STATE_MB` sets the state (default
//! 1024: values of 1000 bytes under distinct keys of a `test-table` function with one
//! partition), `STREAMFN_BENCH_RUNS` the failovers of each setting (default 3; median and
//! range shown). Each setting fills its own function once; each run then has two
//! replicas, one that runs the partition and one that never has (started with an empty
//! data directory, as a new machine would be), waits until the second is ready to take
//! it (with standbys: its copy caught up), kills the first, produces one record, and times
//! until the survivor has committed it.
//!
//! The broker is the project's single test broker, whose consumer group sessions time
//! out after 3 s (Kafka's default is 45 s): a failover cannot begin before that.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use streamfn_demo::replica::{Replica, wait_for};

const VALUE_BYTES: usize = 1000;

fn fnctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fnctl"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A broker started by the project's script, stopped when dropped.
struct Broker {
    dir: PathBuf,
    address: String,
}

impl Broker {
    fn start(dir: &Path) -> Result<Broker> {
        let output = Command::new("bash")
            .arg(root().join("scripts/kafka"))
            .arg("start")
            .arg(dir)
            .output()
            .context("running scripts/kafka")?;
        if !output.status.success() {
            bail!(
                "scripts/kafka start failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(Broker {
            dir: dir.to_path_buf(),
            address: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("scripts/kafka"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// What one failover took.
struct Failover {
    /// From the kill to the survivor's commit of the record produced after it.
    resumed: Duration,
    /// The survivor's restore, when it logged one: seconds, MB read.
    restore: Option<(f64, f64)>,
}

/// One setting's replicas and function.
struct Setting<'a> {
    name: &'a str,
    function: String,
    topic: String,
    serve: Vec<String>,
    dir: PathBuf,
    started: usize,
}

impl Setting<'_> {
    fn start(&mut self) -> Result<Replica> {
        self.started += 1;
        let data = self.dir.join(format!("replica-{}", self.started));
        let args: Vec<&str> = self.serve.iter().map(String::as_str).collect();
        Replica::start(&fnctl(), &data, &args)
    }

    fn status(&self, replica: &Replica) -> Option<Value> {
        let (_, body) = replica.http_get(&format!("/v1/deployments/{}", self.function))?;
        serde_json::from_str(&body).ok()
    }

    /// Which of `replicas` runs partition 0, by its own word (another's may lag).
    fn owner(&self, replicas: &[Replica; 2], ids: &[String; 2]) -> Option<usize> {
        let runs = |i: usize| {
            self.status(&replicas[i])
                .is_some_and(|s| s["partitions"][0]["owner"] == ids[i].as_str())
        };
        match (runs(0), runs(1)) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        }
    }

    /// Fills the function's state with `mb` MB of values through `replica`.
    fn fill(&self, replica: &Replica, mb: u64) -> Result<()> {
        let keys = mb * 1_000_000 / VALUE_BYTES as u64;
        let file = self.dir.join("values.jsonl");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let padding = "x".repeat(VALUE_BYTES - 40);
        for k in 0..keys {
            writeln!(out, r#"{{"k":"key{k:09}","pad":"{padding}"}}"#)?;
        }
        out.flush()?;
        drop(out);
        let started = Instant::now();
        replica.run(&[
            "produce",
            &self.topic,
            "--file",
            &file.to_string_lossy(),
            "--key-field",
            "k",
        ])?;
        std::fs::remove_file(&file)?;
        replica.wait_drained(&self.function, Duration::from_secs(3600))?;
        eprintln!(
            "  {}: {keys} values ({mb} MB) in state after {:.0} s",
            self.name,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Kills the replica among `replicas` that runs the partition, once the other is
    /// ready to take it, and times the failover; the killed one comes back empty.
    fn failover(&mut self, replicas: &mut [Replica; 2], standby: bool) -> Result<Failover> {
        // The survivor must never have run the partition, so that what it has of the
        // state is what a standby copy gave it, if anything: a replica that has is
        // replaced by a new one until the group leaves the partition where it was.
        let (dead, survivor) = loop {
            let ids = [replicas[0].id()?, replicas[1].id()?];
            let mut last = None;
            // The same owner for a second: the group has settled.
            let owner = wait_for(Duration::from_secs(1800), "a settled owner", || {
                std::thread::sleep(Duration::from_millis(500));
                let owner = self.owner(replicas, &ids);
                let settled = owner.is_some() && owner == last;
                last = owner;
                settled.then_some(owner).flatten()
            })?;
            if !replicas[1 - owner]
                .log_text()
                .contains("partition assigned")
            {
                break (owner, 1 - owner);
            }
            replicas[1 - owner].kill();
            replicas[1 - owner] = self.start()?;
        };
        if standby {
            wait_for(
                Duration::from_secs(1800),
                "the standby copy to catch up",
                || {
                    let status = self.status(&replicas[survivor])?;
                    let copies = status["standby"].as_array()?.clone();
                    copies.iter().any(|c| c[0] == 0 && c[1] == 0).then_some(())
                },
            )?;
        } else {
            // Both replicas are in the group and heard from.
            wait_for(Duration::from_secs(60), "both replicas to be known", || {
                let (_, body) = replicas[survivor].http_get("/v1/replica")?;
                let info: Value = serde_json::from_str(&body).ok()?;
                (info["replicas"].as_array()?.len() == 2).then_some(())
            })?;
            std::thread::sleep(Duration::from_secs(3));
        }
        let log_before = replicas[survivor].log_text().len();
        replicas[dead].kill();
        let killed = Instant::now();
        replicas[survivor]
            .run_with_input(&["produce", &self.topic, "--key", "marker"], "marker\n")?;
        let end = self
            .status(&replicas[survivor])
            .and_then(|s| s["partitions"][0]["end"].as_u64())
            .context("the partition's end")?;
        let resumed = wait_for(Duration::from_secs(1800), "the survivor to resume", || {
            let status = self.status(&replicas[survivor])?;
            (status["partitions"][0]["committed"].as_u64()? >= end).then(|| killed.elapsed())
        })?;
        let log = replicas[survivor].log_text();
        let restore = log[log_before..]
            .lines()
            .rfind(|l| l.contains("state restored"))
            .and_then(|line| Some((field(line, "seconds")?, field(line, "mb")?)));
        replicas[dead] = self.start()?;
        Ok(Failover { resumed, restore })
    }
}

/// The number after `name=` in a log line.
fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

/// Median and range of `values`.
fn spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    match values {
        [] => "-".to_owned(),
        [only] => format!("{only:.1}"),
        _ => format!(
            "{:.1} ({:.1}-{:.1})",
            values[values.len() / 2],
            values[0],
            values[values.len() - 1]
        ),
    }
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let mb = env_number("STREAMFN_BENCH_STATE_MB", 1024);
    let runs = env_number("STREAMFN_BENCH_RUNS", 3) as usize;
    let table =
        streamfn_demo::topology::guest(&root().join("target/wasm32-wasip2/release"), "test-table")?;
    let dir = tempfile::Builder::new()
        .prefix("streamfn-failover")
        .tempdir()?;
    let broker = Broker::start(&dir.path().join("kafka"))?;
    eprintln!("failover of a function with {mb} MB of state, {runs} runs per setting");
    let mut report = Vec::new();
    for (name, standby) in [("no standby", false), ("1 standby", true)] {
        let slug = if standby { "warm" } else { "cold" };
        let mut serve = vec!["--brokers".to_owned(), broker.address.clone()];
        if standby {
            serve.extend(["--standby-replicas".to_owned(), "1".to_owned()]);
        }
        let mut setting = Setting {
            name,
            function: format!("table-{slug}"),
            topic: format!("values-{slug}"),
            serve,
            dir: dir.path().join(slug),
            started: 0,
        };
        std::fs::create_dir_all(&setting.dir)?;
        let first = setting.start()?;
        first.run(&["topics", "create", &setting.topic, "--partitions", "1"])?;
        first.deploy(
            &table,
            &setting.function,
            &[
                "--input",
                &setting.topic,
                "--output",
                &format!("out-{slug}"),
                "--config",
                &format!("to=out-{slug}"),
            ],
        )?;
        setting.fill(&first, mb)?;
        let second = setting.start()?;
        let mut replicas = [first, second];
        let mut failovers = Vec::new();
        for run in 0..runs {
            let failover = setting.failover(&mut replicas, standby)?;
            eprintln!(
                "  {name}, run {}: resumed after {:.1} s{}",
                run + 1,
                failover.resumed.as_secs_f64(),
                failover.restore.map_or_else(String::new, |(s, mb)| format!(
                    ", restore read {mb:.0} MB in {s:.1} s ({:.0} MB/s)",
                    mb / s.max(1e-3)
                ))
            );
            failovers.push(failover);
        }
        let mut resumed: Vec<f64> = failovers.iter().map(|f| f.resumed.as_secs_f64()).collect();
        let mut restore_s: Vec<f64> = failovers
            .iter()
            .filter_map(|f| f.restore.map(|r| r.0))
            .collect();
        let mut restore_mb: Vec<f64> = failovers
            .iter()
            .filter_map(|f| f.restore.map(|r| r.1))
            .collect();
        let mut rate: Vec<f64> = failovers
            .iter()
            .filter_map(|f| f.restore.map(|(s, mb)| mb / s.max(1e-3)))
            .collect();
        report.push(format!(
            "| {name} | {} | {} | {} | {} |",
            spread(&mut resumed),
            spread(&mut restore_s),
            spread(&mut restore_mb),
            spread(&mut rate)
        ));
    }
    println!(
        "\nFailover of {mb} MB of state, SIGKILL to the survivor's commit of a new record ({runs} runs, median (range)):\n"
    );
    println!("| setting | resumed after, s | restore, s | restore read, MB | restore rate, MB/s |");
    println!("|---|---|---|---|---|");
    for line in report {
        println!("{line}");
    }
    Ok(())
}
