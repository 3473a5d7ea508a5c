//! `fnctl produce`: writes records to a topic, one per input line.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use streamfn_host::api::wire::{ProduceRecord, ProduceRequest, ProducerSequence};
use streamfn_host::log::kafka::client as kafka;
use streamfn_host::model::clock::now_ms;

use super::{Globals, parse_key_value};
use crate::client::Client;
use crate::output::{self, Format};
use crate::schemas::{RegistryArgs, Writer};

/// Write records to a topic: one record per line of input (stdin by default), the line
/// being the value (UTF-8 text, or base64 or hex with --value-format). Blank lines (empty,
/// or only whitespace) are skipped and counted. Each request to a replica carries a
/// producer id and sequence number, so one sent again after a lost answer is written
/// once; fnctl sends again by itself while the replica cannot be reached, for a minute.
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
    /// How each line gives the record's value.
    #[arg(long, value_enum, default_value_t = ValueFormat::Text, conflicts_with_all = ["key_field", "timestamp_field"])]
    value_format: ValueFormat,
    /// How --key or --key-field gives the record's key: as text, or the bytes it
    /// encodes in base64 or hexadecimal.
    #[arg(long, value_enum, default_value_t = ValueFormat::Text)]
    key_format: ValueFormat,
    /// Write each line, JSON, with this schema (an Avro .avsc, Protobuf .proto or JSON
    /// Schema .json file) in the registry's framing, as a Kafka serializer does: the
    /// schema is registered under subject TOPIC-value of --schema-registry first, unless
    /// the subject's compatibility rules refuse it.
    #[arg(
        long,
        value_name = "FILE",
        requires = "schema_registry",
        conflicts_with = "value_format"
    )]
    schema: Option<PathBuf>,
    /// The schema registry of --schema.
    #[command(flatten)]
    registry: RegistryArgs,
}

/// How a line of input is a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ValueFormat {
    /// The line is the value, UTF-8 text.
    Text,
    /// The line is the value in base64.
    Base64,
    /// The line is the value in hexadecimal.
    Hex,
}

/// Where records go: a replica's embedded log (with this run's producer id and the next
/// request's sequence number), or Kafka.
enum Sink {
    Replica {
        client: Client,
        producer: String,
        sequence: u64,
    },
    Kafka(kafka::Producer),
}

#[derive(Serialize)]
struct Summary<'a> {
    topic: &'a str,
    produced: usize,
    skipped: usize,
}

/// A producer id unique to this run of fnctl.
fn producer_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("fnctl-{:016x}", hasher.finish())
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
        let mut sink = match globals.kafka() {
            Some(kafka) => Sink::Kafka(kafka::producer(&kafka)?),
            None => Sink::Replica {
                client: globals.client()?,
                producer: producer_id(),
                sequence: 0,
            },
        };
        let writer = match (&self.schema, self.registry.client()?) {
            (Some(file), Some(registry)) => Some(Writer::register(&registry, &self.topic, file)?),
            _ => None,
        };
        let mut produced = 0;
        let mut skipped = 0;
        let read = self.read_all(
            input,
            &mut sink,
            writer.as_ref(),
            &mut produced,
            &mut skipped,
        );
        progress.finish_and_clear();
        read.with_context(|| match produced {
            0 => format!("nothing was written to {}", self.topic),
            n => format!(
                "{n} records were written to {} before this; produce the rest from there",
                self.topic
            ),
        })?;
        let summary = Summary {
            topic: &self.topic,
            produced,
            skipped,
        };
        match globals.format {
            Format::Json => output::json(&summary),
            Format::Text => {
                let blank = match skipped {
                    0 => String::new(),
                    n => format!(" ({n} blank lines skipped)"),
                };
                eprintln!("produced {produced} records to {}{blank}", self.topic);
                Ok(())
            }
        }
    }

    /// Sends every line of `input` through `sink`, counting what was written and skipped.
    fn read_all(
        &self,
        mut input: Box<dyn BufRead>,
        sink: &mut Sink,
        writer: Option<&Writer>,
        produced: &mut usize,
        skipped: &mut usize,
    ) -> Result<()> {
        let mut pending = Vec::new();
        let mut line = Vec::new();
        for line_no in 1.. {
            line.clear();
            if input
                .read_until(b'\n', &mut line)
                .context("reading input")?
                == 0
            {
                break;
            }
            let bytes = line
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(&line);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                *skipped += 1;
                continue;
            }
            pending.push(self.record(line_no, bytes, writer)?);
            if pending.len() >= self.batch_size.max(1) {
                *produced += self.send(sink, &mut pending)?;
            }
        }
        *produced += self.send(sink, &mut pending)?;
        Ok(())
    }

    fn send(&self, sink: &mut Sink, pending: &mut Vec<ProduceRecord>) -> Result<usize> {
        if pending.is_empty() {
            return Ok(0);
        }
        let records = std::mem::take(pending);
        let n = records.len();
        match sink {
            Sink::Replica {
                client,
                producer,
                sequence,
            } => {
                let request = ProduceRequest {
                    records,
                    producer: Some(ProducerSequence {
                        id: producer.clone(),
                        sequence: *sequence,
                    }),
                };
                client.produce(&self.topic, &request)?;
                *sequence += 1;
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

    /// Puts `key`, given as --key-format says, into `record`.
    fn set_key(&self, record: &mut ProduceRecord, key: String) -> Result<()> {
        match self.key_format {
            ValueFormat::Text => record.key = Some(key),
            ValueFormat::Base64 => {
                BASE64
                    .decode(&key)
                    .with_context(|| format!("the key {key:?} is not base64"))?;
                record.key_base64 = Some(key);
            }
            ValueFormat::Hex => {
                let bytes = hex::decode(&key)
                    .with_context(|| format!("the key {key:?} is not hexadecimal"))?;
                record.key_base64 = Some(BASE64.encode(bytes));
            }
        }
        Ok(())
    }

    fn record(
        &self,
        line_no: usize,
        bytes: &[u8],
        writer: Option<&Writer>,
    ) -> Result<ProduceRecord> {
        let mut record = ProduceRecord {
            partition: self.partition,
            headers: self.headers.clone(),
            ..ProduceRecord::default()
        };
        if let Some(key) = &self.key {
            self.set_key(&mut record, key.clone())?;
        }
        let text = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).with_context(|| {
                format!(
                    "line {line_no} is not UTF-8 text (for binary values, give them in base64 or hex with --value-format)"
                )
            })
        };
        match self.value_format {
            ValueFormat::Text => {}
            ValueFormat::Base64 => {
                let line = text(bytes)?;
                let line = line.trim();
                BASE64
                    .decode(line)
                    .with_context(|| format!("line {line_no} is not base64"))?;
                record.value_base64 = Some(line.to_owned());
                return Ok(record);
            }
            ValueFormat::Hex => {
                let value = hex::decode(text(bytes)?.trim())
                    .with_context(|| format!("line {line_no} is not hexadecimal"))?;
                record.value_base64 = Some(BASE64.encode(value));
                return Ok(record);
            }
        }
        let line = text(bytes)?;
        if self.key_field.is_some() || self.timestamp_field.is_some() {
            let json: serde_json::Value = serde_json::from_str(&line).with_context(|| {
                format!("line {line_no} is not JSON (needed for --key-field / --timestamp-field)")
            })?;
            if let Some(field) = &self.key_field {
                let key = match json.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => {
                        bail!("line {line_no} has no field {field:?} for the key")
                    }
                    Some(other) => other.to_string(),
                };
                self.set_key(&mut record, key)?;
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
        match writer {
            Some(writer) => {
                let value = writer
                    .write(&line)
                    .map_err(|why| anyhow!("line {line_no} does not fit the schema: {why}"))?;
                record.value_base64 = Some(BASE64.encode(value));
            }
            None => record.value = Some(line),
        }
        Ok(record)
    }
}
