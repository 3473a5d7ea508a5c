//! `fnctl status`: partitions, lag, throughput and failures of functions.

use anyhow::Result;
use clap::Args;

use super::{Globals, utc};
use crate::output::{self, Format};
use streamfn_host::model::clock::now_ms;
use streamfn_host::model::deployment::ReplayFrom;
use streamfn_host::replica::{FunctionStatus, ReplayProgress};

/// Show functions' partitions, owners, lag and failures.
#[derive(Debug, Args)]
pub struct Status {
    /// Function name [default: every deployed function].
    name: Option<String>,
}

impl Status {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let client = globals.client()?;
        let names = match self.name {
            Some(name) => vec![name],
            None => client
                .deployments()?
                .into_iter()
                .map(|d| d.spec.name)
                .collect(),
        };
        let statuses = names
            .iter()
            .map(|name| client.status(name))
            .collect::<Result<Vec<_>>>()?;
        if globals.format == Format::Json {
            return output::json(&statuses);
        }
        if statuses.is_empty() {
            println!("no functions deployed");
        }
        for (i, status) in statuses.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print_status(status);
        }
        Ok(())
    }
}

fn print_status(status: &FunctionStatus) {
    let d = &status.deployment;
    println!(
        "{}  version {}  sha256 {}",
        d.spec.name,
        d.version,
        &d.spec.component[..12]
    );
    let failures = if status.failures.is_empty() {
        "none".to_owned()
    } else {
        status
            .failures
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  lag {}  rate {:.0}/s  records in {}  out {}  dead letters {}  fuel/event {:.0}  state entries {} ({})",
        status.lag,
        status.rate,
        status.records_in,
        status.records_out,
        status.dead_letters,
        status.fuel_per_event,
        status.state_entries,
        bytes(status.state_bytes)
    );
    let pattern = d
        .spec
        .input_pattern
        .as_ref()
        .map_or_else(String::new, |p| format!("  (pattern {p:?})"));
    println!("  inputs: {}{pattern}", status.inputs.join(", "));
    println!("  failures: {failures}");
    if let Some(failing) = &status.failing {
        println!("  FAILING on this replica: {failing}");
    }
    if let Some(progress) = &status.replay {
        println!("  {}", replay_line(progress));
    }
    if let Some(cause) = &d.cause {
        println!("  version {} was made because {cause}", d.version);
    }
    if status.running.len() > 1 {
        print_versions(status);
    }
    for restore in &status.restoring {
        let seconds = (now_ms() - restore.started_ms).max(1) as f64 / 1e3;
        println!(
            "  restoring partition {} from the changelog: {} of at most {} records ({:.0} MB, {:.1} MB/s)",
            restore.partition,
            restore.records,
            restore.of,
            restore.bytes as f64 / 1e6,
            restore.bytes as f64 / 1e6 / seconds
        );
    }
    if !status.standby.is_empty() {
        let copies: Vec<String> = status
            .standby
            .iter()
            .map(|(partition, behind)| format!("{partition} ({behind} behind)"))
            .collect();
        println!("  standby copies here: partitions {}", copies.join(", "));
    }
    let rows: Vec<Vec<String>> = status
        .partitions
        .iter()
        .map(|p| {
            vec![
                format!("  {}", p.topic),
                p.partition.to_string(),
                p.committed.to_string(),
                p.end.to_string(),
                p.lag.to_string(),
                p.owner.clone(),
            ]
        })
        .collect();
    output::table(
        &["  TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "OWNER"],
        &rows,
    );
}

/// The running versions side by side: what each did on this replica.
fn print_versions(status: &FunctionStatus) {
    let rows: Vec<Vec<String>> = status
        .running
        .iter()
        .map(|v| {
            let f = &v.figures;
            vec![
                format!("  {}{}", f.version, if v.canary { " (canary)" } else { "" }),
                output::partitions(&v.partitions),
                f.records_in.to_string(),
                f.records_out.to_string(),
                f.failed.to_string(),
                format!("{:.2}%", f.failure_rate() * 100.0),
                format!("{:.0}", f.fuel_per_event()),
                format!("{:.1}", f.mean_batch_seconds() * 1e3),
            ]
        })
        .collect();
    output::table(
        &[
            "  VERSION",
            "PARTITIONS",
            "IN",
            "OUT",
            "FAILED",
            "FAILURE RATE",
            "FUEL/EVENT",
            "BATCH MS",
        ],
        &rows,
    );
}

/// Where a replay stands, in a line.
fn replay_line(progress: &ReplayProgress) -> String {
    let replay = &progress.replay;
    let from = match &replay.from {
        ReplayFrom::Earliest => "the earliest offsets".to_owned(),
        ReplayFrom::Time(ms) => utc(*ms),
        ReplayFrom::Offsets(offsets) => offsets
            .iter()
            .map(|(topic, partition, offset)| format!("{topic}:{partition}:{offset}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let state = if replay.reset_state {
        "state started over"
    } else {
        "state kept"
    };
    let stage = if progress.done() {
        "done".to_owned()
    } else if progress.waiting > 0 {
        format!(
            "{} partitions still to move back, {} records left to read again",
            progress.waiting, progress.left
        )
    } else {
        format!("{} records left to read again", progress.left)
    };
    format!(
        "replay from {from} ({state}), asked at {}: {stage}",
        utc(progress.asked_at_ms)
    )
}

/// `bytes` for people: B, KiB, MiB or GiB.
fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
