//! `fnctl topics`: create and list topics.

use anyhow::Result;
use clap::{Args, Subcommand};

use streamfn_host::api::wire::CreateTopic;
use streamfn_host::log::NewTopic;
use streamfn_host::log::kafka::client as kafka;

use super::Globals;
use crate::output::{self, Format};

/// Create and list topics.
#[derive(Debug, Subcommand)]
pub enum Topics {
    /// Create a topic.
    Create(Create),
    /// List topics with their partitions and sizes.
    List,
}

/// Create a topic.
#[derive(Debug, Args)]
pub struct Create {
    /// Topic name (letters, digits, `.`, `_`, `-`).
    name: String,
    /// Number of partitions: the most replicas that can share the topic's work.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Delete records older than this many milliseconds (by record timestamp).
    #[arg(long)]
    retention_ms: Option<u64>,
    /// Keep about this many bytes per partition, deleting the oldest records.
    #[arg(long)]
    retention_bytes: Option<u64>,
    /// Succeed when the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
}

impl Topics {
    /// Runs the subcommand.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let client = globals.client()?;
        let brokers = globals.kafka();
        match self {
            Topics::Create(create) => {
                let request = CreateTopic {
                    name: create.name,
                    partitions: create.partitions,
                    retention_ms: create.retention_ms,
                    retention_bytes: create.retention_bytes,
                    if_not_exists: create.if_not_exists,
                };
                let topic = match &brokers {
                    Some(options) => {
                        let topic = NewTopic {
                            name: request.name.clone(),
                            partitions: request.partitions,
                            retention_ms: request.retention_ms,
                            retention_bytes: request.retention_bytes,
                        };
                        kafka::create_topic(options, &topic, request.if_not_exists)?
                    }
                    None => client.create_topic(&request)?,
                };
                match globals.format {
                    Format::Json => output::json(&topic)?,
                    Format::Text => {
                        println!("topic {} ({} partitions)", topic.name, topic.partitions)
                    }
                }
            }
            Topics::List => {
                let topics = match &brokers {
                    Some(options) => kafka::topics(options)?,
                    None => client.topics()?,
                };
                match globals.format {
                    Format::Json => output::json(&topics)?,
                    Format::Text => {
                        let rows: Vec<Vec<String>> = topics
                            .iter()
                            .map(|t| {
                                vec![
                                    t.name.clone(),
                                    t.partitions.to_string(),
                                    t.records.to_string(),
                                    t.bytes.to_string(),
                                    t.retention_ms
                                        .map_or("-".to_owned(), |ms| format!("{ms} ms")),
                                ]
                            })
                            .collect();
                        output::table(
                            &["TOPIC", "PARTITIONS", "RECORDS", "BYTES", "RETENTION"],
                            &rows,
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
