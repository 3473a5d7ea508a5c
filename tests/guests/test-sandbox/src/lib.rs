//! Test guest: tries to reach outside the sandbox (files, environment, sockets, clocks)
//! and emits a JSON report of what it saw to `out`. The event value is a loopback
//! address (`127.0.0.1:PORT`) the test listens on.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use streamfn::{Context, Event, Failure};

/// What the guest could observe of its surroundings.
#[derive(Serialize)]
pub struct Report {
    /// Entries of `/` it could list.
    pub root_entries: Vec<String>,
    /// Whether `/etc/passwd` opened, or the error.
    pub open_file: String,
    /// Environment variables it could read.
    pub env_vars: Vec<String>,
    /// Whether the TCP connection to the event's address opened, or the error.
    pub socket: String,
    /// The wall clock in milliseconds since the Unix epoch.
    pub wall_clock_ms: i64,
    /// Nanoseconds the monotonic clock moved across a busy loop.
    pub monotonic_elapsed_ns: u128,
}

fn outcome<T, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => "opened".to_owned(),
        Err(err) => format!("error: {err}"),
    }
}

/// Probes the sandbox and reports.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let root_entries = std::fs::read_dir("/")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let address = event.value_str().unwrap_or("127.0.0.1:9").to_owned();
    let started = Instant::now();
    let mut spin: u64 = 0;
    for i in 0..1_000_000u64 {
        spin = std::hint::black_box(spin.wrapping_add(i));
    }
    let report = Report {
        root_entries,
        open_file: outcome(std::fs::File::open("/etc/passwd")),
        env_vars: std::env::vars().map(|(k, _)| k).collect(),
        socket: outcome(std::net::TcpStream::connect(address.as_str())),
        wall_clock_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(-1),
        monotonic_elapsed_ns: started.elapsed().as_nanos(),
    };
    ctx.emit_json("out", None, &report);
    Ok(())
}

streamfn::export!(handle);
