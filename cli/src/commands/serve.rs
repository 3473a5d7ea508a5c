//! `fnctl serve`: runs a replica, on the embedded log or on Kafka, until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use streamfn_host::api::{Admin, tls};
use streamfn_host::log::Mode;
use streamfn_host::log::embedded::LogConfig;
use streamfn_host::log::kafka::KafkaOptions;
use streamfn_host::replica::{Replica, Settings};

use super::Globals;
use crate::schemas::RegistryArgs;

/// Run a replica: on the embedded log by default, or on Kafka with --brokers.
#[derive(Debug, Args)]
pub struct Serve {
    /// On Kafka, commit outputs and input offsets separately (faster, but a crash can
    /// repeat outputs) instead of in one transaction.
    #[arg(long)]
    at_least_once: bool,
    /// On Kafka, how many other replicas keep a standby copy of each partition's state
    /// by following its changelog, so that a failover to one of them resumes without
    /// restoring the whole state.
    #[arg(long, default_value_t = 0)]
    standby_replicas: u32,
    /// Directory for the log, function state and compiled components.
    #[arg(long, env = "STREAMFN_DATA_DIR", default_value = "streamfn-data")]
    data_dir: PathBuf,
    /// Address of the admin API (deploy, status, records, /metrics, /readyz).
    #[arg(long, env = "STREAMFN_ADMIN_LISTEN", default_value = "127.0.0.1:7070")]
    admin_listen: SocketAddr,
    /// Token clients must present; required when the admin API is not on loopback.
    #[arg(long, env = "STREAMFN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Certificate chain (PEM) the admin API serves TLS with.
    #[arg(long, value_name = "PEM", requires = "admin_tls_key")]
    admin_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --admin-tls-cert.
    #[arg(long, value_name = "PEM", requires = "admin_tls_cert")]
    admin_tls_key: Option<PathBuf>,
    /// Function instances alive at once, across all functions. A function makes its
    /// instance when it has records and gives it back after a second idle.
    #[arg(long, default_value_t = streamfn_host::sandbox::MAX_INSTANCES)]
    max_instances: u32,
    /// Threads that run functions' partitions, shared by all functions, which take
    /// turns on them; a partition runs on one worker at a time. Default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// Megabytes of committed state values each partition's runner keeps in memory at
    /// most, whatever their sizes (0: none; each read goes to the local store).
    #[arg(long, value_name = "MB", default_value_t = (streamfn_host::state::cache::CACHE_BYTES >> 20) as u64)]
    state_cache_mb: u64,
    /// Largest record accepted, in bytes (key, value and headers).
    #[arg(long, default_value_t = 1 << 20)]
    max_record_bytes: usize,
    /// Host log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The schema registry of the topics deployed with a registry format (avro,
    /// json-schema, protobuf).
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Format of the host's own logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Serve {
    /// Runs the replica until Ctrl-C or SIGTERM.
    pub fn run(self, globals: &Globals) -> Result<()> {
        init_logging(self.log_format);
        if self
            .admin_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            bail!(
                "the admin token is empty: set --admin-token (or STREAMFN_ADMIN_TOKEN) to a secret, or leave it out on loopback"
            );
        }
        let off_loopback = !self.admin_listen.ip().is_loopback();
        if off_loopback && self.admin_token.is_none() {
            bail!(
                "--admin-listen {} is reachable from other machines: set --admin-token (or STREAMFN_ADMIN_TOKEN) to protect it",
                self.admin_listen
            );
        }
        if off_loopback && self.admin_tls_cert.is_none() {
            tracing::warn!(
                "the admin API on {} is plain HTTP: its token crosses the network in clear; serve TLS with --admin-tls-cert and --admin-tls-key",
                self.admin_listen
            );
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        if self.standby_replicas > 0 && globals.brokers.is_none() {
            bail!(
                "--standby-replicas keeps copies of state on other replicas of a Kafka cluster: give --brokers too"
            );
        }
        let kafka = globals.kafka().map(|options| KafkaOptions {
            exactly_once: !self.at_least_once,
            standby_replicas: self.standby_replicas,
            ..options
        });
        runtime.block_on(self.serve(kafka))
    }

    async fn serve(self, kafka: Option<KafkaOptions>) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(self.admin_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}: is another replica running? choose another address with --admin-listen",
                    self.admin_listen
                )
            })?;
        let address = listener.local_addr()?;
        let data_dir = self.data_dir.clone();
        let mode = match kafka {
            Some(options) => Mode::Kafka(options),
            None => Mode::Embedded(LogConfig {
                max_record_bytes: self.max_record_bytes,
                ..LogConfig::default()
            }),
        };
        let tls = match (&self.admin_tls_cert, &self.admin_tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let admin = format!("{scheme}://{address}");
        let schema_registry = self.registry.client()?.map(Arc::new);
        let settings = Settings {
            max_instances: self.max_instances,
            workers: self
                .workers
                .map_or_else(streamfn_host::replica::default_workers, usize::from),
            schema_registry,
            state_cache_bytes: self
                .state_cache_mb
                .checked_mul(1 << 20)
                .and_then(|bytes| usize::try_from(bytes).ok())
                .context("--state-cache-mb is too large")?,
        };
        let replica = tokio::task::spawn_blocking(move || {
            Replica::open_with(&data_dir, mode, &admin, &settings)
        })
        .await??;
        tracing::info!(data_dir = %self.data_dir.display(), "replica {} open", replica.id);
        let admin = Admin {
            token: self.admin_token,
            tls,
        };
        streamfn_host::api::serve(listener, replica, admin, shutdown_signal()).await
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STREAMFN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours for a terminal only: a file or a journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
