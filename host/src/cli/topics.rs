//! `fnctl topics`: create and list topics.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{Format, Globals, output};
use crate::wire::CreateTopic;

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
        let client = globals.client();
        let kafka = globals.kafka();
        match self {
            Topics::Create(create) => {
                let request = CreateTopic {
                    name: create.name,
                    partitions: create.partitions,
                    retention_ms: create.retention_ms,
                    retention_bytes: create.retention_bytes,
                    if_not_exists: create.if_not_exists,
                };
                let topic = match &kafka {
                    Some(kafka) => crate::kafka::client::create_topic(kafka, &request)?,
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
                let topics = match &kafka {
                    Some(kafka) => crate::kafka::client::topics(kafka)?,
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
