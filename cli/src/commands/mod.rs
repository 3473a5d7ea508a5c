//! The commands of `fnctl`, one module each, each a clap struct with `run`. Human output
//! by default, `--format json` for scripts.

mod build;
mod check;
mod consume;
mod deploy;
mod list;
mod logs;
mod new;
mod produce;
mod replay;
mod serve;
mod state;
mod status;
mod topics;
mod undeploy;
mod versions;

use anyhow::Result;
use clap::{Parser, Subcommand};
use streamfn_host::log::kafka::KafkaOptions;

use crate::client::Client;
use crate::output::Format;

/// Run WebAssembly functions on event streams.
#[derive(Debug, Parser)]
#[command(name = "fnctl", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Admin API of the replica to talk to.
    #[arg(
        long,
        global = true,
        env = "FNCTL_ADMIN",
        default_value = "http://127.0.0.1:7070"
    )]
    pub admin: String,
    /// Token for the admin API (needed when the replica has one).
    #[arg(long, global = true, env = "FNCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to check an https admin API's certificate against, for a
    /// replica whose certificate is self-signed or from a private CA.
    #[arg(long, global = true, env = "FNCTL_ADMIN_CA", value_name = "PEM")]
    pub admin_ca: Option<std::path::PathBuf>,
    /// How to print results: text for people, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Kafka bootstrap servers (HOST:PORT[,...]). `serve` then runs on Kafka, and
    /// `topics`, `produce` and `consume` talk to Kafka directly.
    #[arg(long, global = true, env = "FNCTL_BROKERS")]
    pub brokers: Option<String>,
    /// A librdkafka property for every Kafka client (repeat): TLS, SASL, compression,
    /// batching, e.g. `security.protocol=SASL_SSL`.
    #[arg(long = "kafka-option", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `fnctl`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a replica (on the embedded log, or on Kafka with --brokers).
    Serve(serve::Serve),
    /// Create and list topics.
    #[command(subcommand)]
    Topics(topics::Topics),
    /// Deploy a function (a new version if the name exists).
    Deploy(deploy::Deploy),
    /// List deployed functions.
    List(list::List),
    /// Show a function's partitions, lag, throughput and failures.
    Status(status::Status),
    /// Read a function's committed state (a key, or keys with a prefix).
    #[command(subcommand)]
    State(state::State),
    /// Stop a function (its offsets and state are kept).
    Undeploy(undeploy::Undeploy),
    /// List a function's versions and which one runs where.
    Versions(versions::Versions),
    /// Deploy an earlier version of a function again, without its file, or end a canary.
    Rollback(versions::Rollback),
    /// Make a function's canary its only version.
    Promote(versions::Promote),
    /// Process a function's inputs again, from the oldest, a time or given offsets.
    Replay(replay::Replay),
    /// Show (and follow) a function's log lines.
    Logs(logs::Logs),
    /// Create a function project from a template.
    New(new::New),
    /// Build the function project in the current directory into a component.
    Build(build::Build),
    /// Verify a data directory offline, and salvage what is intact.
    Check(check::Check),
    /// Write records to a topic, one per input line.
    Produce(produce::Produce),
    /// Print records of a topic, one JSON object per line.
    Consume(consume::Consume),
}

/// What every command gets besides its own arguments.
pub struct Globals {
    /// Where to print, and how.
    pub format: Format,
    admin: String,
    token: Option<String>,
    admin_ca: Option<std::path::PathBuf>,
    brokers: Option<String>,
    kafka_options: Vec<(String, String)>,
}

impl Globals {
    /// A client of the replica named by `--admin`.
    pub fn client(&self) -> Result<Client> {
        Client::new(&self.admin, self.token.clone(), self.admin_ca.as_deref())
    }

    /// How to reach Kafka, when `--brokers` was given.
    pub fn kafka(&self) -> Option<KafkaOptions> {
        self.brokers.as_ref().map(|brokers| KafkaOptions {
            brokers: brokers.clone(),
            properties: self.kafka_options.clone(),
            exactly_once: true,
            standby_replicas: 0,
        })
    }
}

impl Cli {
    /// Runs the command.
    pub fn run(self) -> Result<()> {
        let globals = Globals {
            format: self.format,
            admin: self.admin,
            token: self.token,
            admin_ca: self.admin_ca,
            brokers: self.brokers,
            kafka_options: self.kafka_options,
        };
        match self.command {
            Command::Serve(cmd) => cmd.run(&globals),
            Command::Topics(cmd) => cmd.run(&globals),
            Command::Deploy(cmd) => cmd.run(&globals),
            Command::List(cmd) => cmd.run(&globals),
            Command::Status(cmd) => cmd.run(&globals),
            Command::State(cmd) => cmd.run(&globals),
            Command::Undeploy(cmd) => cmd.run(&globals),
            Command::Versions(cmd) => cmd.run(&globals),
            Command::Rollback(cmd) => cmd.run(&globals),
            Command::Promote(cmd) => cmd.run(&globals),
            Command::Replay(cmd) => cmd.run(&globals),
            Command::Logs(cmd) => cmd.run(&globals),
            Command::New(cmd) => cmd.run(&globals),
            Command::Build(cmd) => cmd.run(&globals),
            Command::Check(cmd) => cmd.run(&globals),
            Command::Produce(cmd) => cmd.run(&globals),
            Command::Consume(cmd) => cmd.run(&globals),
        }
    }
}

/// Parses a time: RFC 3339 in UTC (`2026-01-01T00:00:00Z`) or milliseconds since the
/// Unix epoch; milliseconds since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is not a time (RFC 3339 in UTC, or milliseconds): {e}"))?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("{s:?} is too far away"))
}

/// A time in milliseconds since the Unix epoch as people read it: RFC 3339 in UTC, to
/// the second, as `parse_time` reads it back.
pub fn utc(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_time, utc};

    #[test]
    fn times_print_as_utc_and_read_back() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29T01:02:03Z");
        assert_eq!(
            parse_time("2000-02-29T01:02:03Z"),
            Ok(951_782_400_000 + 3_723_000)
        );
        assert_eq!(parse_time(&utc(1_767_225_600_000)), Ok(1_767_225_600_000));
        assert_eq!(parse_time("1767225600000"), Ok(1_767_225_600_000));
        assert!(parse_time("yesterday").is_err());
    }
}
