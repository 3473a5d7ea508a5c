//! `fnctl produce`: writes records to a topic, one per input line.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;

use streamfn_host::api::wire::{ProduceRecord, ProduceRequest};
use streamfn_host::log::kafka::client as kafka;
use streamfn_host::model::clock::now_ms;

use super::{Globals, parse_key_value};
use crate::client::Client;
use crate::output::{self, Format};

/// Write records to a topic: one record per line of input (stdin by default), the line
/// being the value. Empty lines are skipped.
#[derive(Debug, Args)]
pub struct Produce {
    /// Topic to write to.
    topic: String,
    /// Key of every record.
    #[arg(long, conflicts_with = "key_field")]
    key: Option<String>,
    /// Take each record's key from this field of the JSON line.
    #[arg(long)]
    key_field: Option<String>,
    /// Take each record's timestamp (milliseconds) from this field of the JSON line
    /// [default: the time of producing].
    #[arg(long)]
    timestamp_field: Option<String>,
    /// Partition to write to [default: from the key].
    #[arg(long)]
    partition: Option<u32>,
    /// Header on every record (repeat).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Records per request.
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
}

/// Where records go: a replica's embedded log, or Kafka.
enum Sink {
    Replica(Client),
    Kafka(kafka::Producer),
}

#[derive(Serialize)]
struct Summary<'a> {
    topic: &'a str,
    produced: usize,
}

impl Produce {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let progress = match &self.file {
            Some(path) => {
                let len = std::fs::metadata(path).map_or(0, |m| m.len());
                crate::progress::bytes(len, format!("producing to {}", self.topic))
            }
            None => indicatif::ProgressBar::hidden(),
        };
        let input: Box<dyn BufRead> = match &self.file {
            Some(path) => Box::new(std::io::BufReader::new(
                progress.wrap_read(
                    std::fs::File::open(path)
                        .with_context(|| format!("cannot open {}", path.display()))?,
                ),
            )),
            None => Box::new(std::io::stdin().lock()),
        };
        let sink = match globals.kafka() {
            Some(kafka) => Sink::Kafka(kafka::producer(&kafka)?),
            None => Sink::Replica(globals.client()),
        };
        let mut pending = Vec::new();
        let mut produced = 0;
        for (i, line) in input.lines().enumerate() {
            let line = line.context("reading input")?;
            if line.trim().is_empty() {
                continue;
            }
            pending.push(self.record(i + 1, line)?);
            if pending.len() >= self.batch_size.max(1) {
                produced += self.send(&sink, &mut pending)?;
            }
        }
        produced += self.send(&sink, &mut pending)?;
        progress.finish_and_clear();
        let summary = Summary {
            topic: &self.topic,
            produced,
        };
        match globals.format {
            Format::Json => output::json(&summary),
            Format::Text => {
                eprintln!("produced {produced} records to {}", self.topic);
                Ok(())
            }
        }
    }

    fn send(&self, sink: &Sink, pending: &mut Vec<ProduceRecord>) -> Result<usize> {
        if pending.is_empty() {
            return Ok(0);
        }
        let records = std::mem::take(pending);
        let n = records.len();
        match sink {
            Sink::Replica(client) => {
                client.produce(&self.topic, &ProduceRequest { records })?;
            }
            Sink::Kafka(producer) => {
                let now = now_ms();
                let records = records
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| r.into_record(now).map_err(|e| anyhow!("record {i}: {e}")))
                    .collect::<Result<Vec<_>>>()?;
                kafka::produce(producer, &self.topic, records)?;
            }
        }
        Ok(n)
    }

    fn record(&self, line_no: usize, line: String) -> Result<ProduceRecord> {
        let mut record = ProduceRecord {
            key: self.key.clone(),
            partition: self.partition,
            headers: self.headers.clone(),
            ..ProduceRecord::default()
        };
        if self.key_field.is_some() || self.timestamp_field.is_some() {
            let json: serde_json::Value = serde_json::from_str(&line).with_context(|| {
                format!("line {line_no} is not JSON (needed for --key-field / --timestamp-field)")
            })?;
            if let Some(field) = &self.key_field {
                record.key = Some(match json.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => {
                        bail!("line {line_no} has no field {field:?} for the key")
                    }
                    Some(other) => other.to_string(),
                });
            }
            if let Some(field) = &self.timestamp_field {
                let ts = json
                    .get(field)
                    .and_then(serde_json::Value::as_i64)
                    .with_context(|| {
                        format!(
                            "line {line_no} has no whole-number field {field:?} for the timestamp"
                        )
                    })?;
                record.timestamp_ms = Some(ts);
            }
        }
        record.value = Some(line);
        Ok(record)
    }
}
