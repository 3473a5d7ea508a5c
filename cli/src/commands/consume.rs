//! `fnctl consume`: prints a topic's records as JSON lines.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;

use streamfn_host::api::wire::ConsumedRecord;
use streamfn_host::log::kafka::client::{self as kafka, ConsumeOptions};
use streamfn_host::model::record::Record;

use super::Globals;
use crate::schemas::{self, RegistryArgs};

/// Print records of a topic, one JSON object per line (topic, partition, offset,
/// timestamp, key, value, headers). Follows the topic until --max or --timeout ends it.
#[derive(Debug, Args)]
pub struct Consume {
    /// Topic to read.
    topic: String,
    /// Start at the oldest record kept instead of at the end.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<usize>,
    /// Stop once no record has arrived for this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// With a registry, values in its framing (Avro, Protobuf, JSON Schema) print as the
    /// JSON of the schema that wrote them, with header streamfn.schema.id; one that does
    /// not decode prints as it is, with header streamfn.decode.error saying why.
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Pause between polls when every partition is drained.
const POLL: Duration = Duration::from_millis(100);

impl Consume {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let registry = self.registry.client()?;
        let readable = |record: Record| -> Result<Record> {
            let mut record = record;
            if let Some(registry) = &registry {
                schemas::read(registry, &mut record)?;
            }
            Ok(record)
        };
        if let Some(kafka) = globals.kafka() {
            let how = ConsumeOptions {
                from_beginning: self.from_beginning,
                max: self.max.unwrap_or(usize::MAX),
                idle: self.timeout.map(Duration::from_secs_f64),
                partition: self.partition,
            };
            let mut out = std::io::stdout().lock();
            let topic = &self.topic;
            return kafka::consume(&kafka, topic, &how, |partition, offset, record| {
                let record = ConsumedRecord::new(topic, partition, offset, readable(record)?);
                writeln!(out, "{}", serde_json::to_string(&record)?)
                    .context("writing to stdout")?;
                out.flush().context("writing to stdout")
            });
        }
        let client = globals.client()?;
        let topics = client.topics()?;
        let Some(topic) = topics.into_iter().find(|t| t.name == self.topic) else {
            bail!(
                "topic {:?} does not exist; `fnctl topics list` shows the topics",
                self.topic
            );
        };
        let mut positions: Vec<(u32, u64)> = topic
            .offsets
            .iter()
            .enumerate()
            .map(|(p, (start, end))| (p as u32, if self.from_beginning { *start } else { *end }))
            .filter(|(p, _)| self.partition.is_none_or(|only| only == *p))
            .collect();
        if positions.is_empty() {
            bail!("topic {} has no partition {:?}", self.topic, self.partition);
        }
        let idle_limit = self.timeout.map(Duration::from_secs_f64);
        let max = self.max.unwrap_or(usize::MAX);
        let mut printed = 0;
        let mut last_record = Instant::now();
        let mut out = std::io::stdout().lock();
        while printed < max {
            let mut got = 0;
            for (partition, offset) in positions.iter_mut() {
                let want = (max - printed).min(1000);
                if want == 0 {
                    break;
                }
                let page = client.consume(&self.topic, *partition, *offset, want)?;
                *offset = page.next;
                for record in page.records {
                    let record = match &registry {
                        None => record,
                        Some(_) => {
                            let (partition, offset) = (record.partition, record.offset);
                            let stored = record.into_record().map_err(|e| anyhow!(e))?;
                            ConsumedRecord::new(&self.topic, partition, offset, readable(stored)?)
                        }
                    };
                    writeln!(out, "{}", serde_json::to_string(&record)?)
                        .context("writing to stdout")?;
                    printed += 1;
                    got += 1;
                }
            }
            out.flush().context("writing to stdout")?;
            if got > 0 {
                last_record = Instant::now();
                continue;
            }
            if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                break;
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }
}
