//! log-correlator: counts ERROR lines per service in tumbling windows and alerts on
//! bursts, and gathers each request's lines by correlation id to report the traces that
//! failed, with their root cause.
//!
//! Service logs arrive keyed by service, so a trace's lines are spread over partitions.
//! The function therefore re-emits every line to `logs-by-trace`, keyed by correlation id,
//! and a second deployment of the same component reads that topic (the Kafka Streams
//! repartition pattern): there, all lines of a trace meet in one partition's state, and
//! each half keeps its own stream time. Event time is the record timestamp, the one stream
//! time is made of, so windows close at the same place on every replay. It is not a log
//! store: a trace keeps counts and its root cause, never its lines.

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure, Output, Timer};

const SERVICE_LOGS: &str = "service-logs";
const LOGS_BY_TRACE: &str = "logs-by-trace";
const ERROR_ALERTS: &str = "error-alerts";
const CORRELATED_TRACES: &str = "correlated-traces";

/// Length of the error-counting windows, unless config `window_ms` says.
pub const DEFAULT_WINDOW_MS: i64 = 5 * 60_000;
/// How long after its end a window still takes late errors, unless config `grace_ms` says.
pub const DEFAULT_GRACE_MS: i64 = 30_000;
/// Errors in one window that make an alert, unless config `error_threshold` says.
pub const DEFAULT_ERROR_THRESHOLD: u64 = 10;
/// How long a trace gathers lines from its first one, unless config `trace_window_ms` says.
pub const DEFAULT_TRACE_WINDOW_MS: i64 = 60 * 60_000;

/// Messages an error alert quotes.
const MAX_SAMPLES: usize = 3;
/// Services a trace remembers; lines of further ones still count.
const MAX_TRACE_SERVICES: usize = 32;

/// State keys and timer keys of error windows: `w/<service>/<window start>`.
const WINDOW_PREFIX: &str = "w/";
/// State keys and timer keys of traces: `t/<correlation id>`.
const TRACE_PREFIX: &str = "t/";

/// A `service-logs` (and `logs-by-trace`) record.
#[derive(Debug, Deserialize)]
struct LogLine {
    service: String,
    level: String,
    message: String,
    #[serde(default)]
    correlation_id: Option<String>,
}

impl LogLine {
    fn is_error(&self) -> bool {
        self.level.eq_ignore_ascii_case("ERROR")
    }
}

/// The errors of one service in one window.
#[derive(Debug, Serialize, Deserialize)]
struct ErrorWindow {
    service: String,
    window_start_ms: i64,
    window_end_ms: i64,
    errors: u64,
    samples: Vec<String>,
}

/// What has been seen of one trace so far.
#[derive(Debug, Serialize, Deserialize)]
struct Trace {
    correlation_id: String,
    first_ms: i64,
    last_ms: i64,
    events: u64,
    errors: u64,
    /// Each service with the time of its first line.
    services: Vec<(String, i64)>,
    /// The earliest error.
    root_cause: Option<RootCause>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RootCause {
    service: String,
    message: String,
    timestamp_ms: i64,
}

/// What the function sends to `correlated-traces`.
#[derive(Debug, Serialize)]
struct CorrelatedTrace<'a> {
    correlation_id: &'a str,
    services: Vec<&'a str>,
    events: u64,
    errors: u64,
    first_ms: i64,
    last_ms: i64,
    root_cause: Option<Culprit<'a>>,
}

#[derive(Debug, Serialize)]
struct Culprit<'a> {
    service: &'a str,
    message: &'a str,
}

/// Handles a line of `service-logs` or of the function's own `logs-by-trace`.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    match event.topic.as_str() {
        SERVICE_LOGS => on_service_log(event, ctx),
        LOGS_BY_TRACE => on_trace_line(event, ctx),
        other => Err(Failure::reject(format!(
            "log-correlator reads `{SERVICE_LOGS}` and `{LOGS_BY_TRACE}`, not `{other}`"
        ))),
    }
}

/// Closes an error window or a trace whose time has come.
pub fn on_timer(timer: &Timer, ctx: &mut Context) -> Result<(), Failure> {
    match timer.key_str() {
        Some(key) if key.starts_with(WINDOW_PREFIX) => close_window(key, ctx),
        Some(key) if key.starts_with(TRACE_PREFIX) => close_trace(key, ctx),
        _ => Err(Failure::reject(format!(
            "log-correlator schedules no timer {:?}",
            String::from_utf8_lossy(&timer.key)
        ))),
    }
}

streamfn::export!(handle, timers = on_timer);

/// A duration from config of at least `min` milliseconds.
fn duration(ctx: &Context, key: &str, default: i64, min: i64) -> Result<i64, Failure> {
    let value: i64 = ctx.config_or(key, default)?;
    if value < min {
        return Err(Failure::reject(format!(
            "config {key}={value} must be at least {min}"
        )));
    }
    Ok(value)
}

fn on_service_log(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let line: LogLine = event.json()?;
    if line.is_error() {
        count_error(&line, event, ctx)?;
    }
    if let Some(correlation_id) = &line.correlation_id {
        let mut output = Output::new(LOGS_BY_TRACE).key(correlation_id);
        output.value = event.value.clone();
        output.headers = event.headers.clone();
        ctx.send(&output);
    }
    Ok(())
}

fn count_error(line: &LogLine, event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let window_ms = duration(ctx, "window_ms", DEFAULT_WINDOW_MS, 1)?;
    let grace_ms = duration(ctx, "grace_ms", DEFAULT_GRACE_MS, 0)?;
    let start = event.timestamp_ms - event.timestamp_ms.rem_euclid(window_ms);
    let end = start + window_ms;
    let closes_at = end + grace_ms;
    if event.stream_time_ms >= closes_at {
        ctx.warn(format!(
            "dropped a late ERROR of {} at {}: its window [{start}, {end}) closed at stream time {closes_at}",
            line.service, event.timestamp_ms
        ));
        return Ok(());
    }
    let key = format!("{WINDOW_PREFIX}{}/{start}", line.service);
    let mut window = match ctx.get_json::<ErrorWindow>(&key)? {
        Some(window) => window,
        None => {
            ctx.schedule_timer(&key, closes_at);
            ErrorWindow {
                service: line.service.clone(),
                window_start_ms: start,
                window_end_ms: end,
                errors: 0,
                samples: Vec::new(),
            }
        }
    };
    window.errors += 1;
    if window.samples.len() < MAX_SAMPLES {
        window.samples.push(line.message.clone());
    }
    ctx.set_json(&key, &window);
    Ok(())
}

fn close_window(key: &str, ctx: &mut Context) -> Result<(), Failure> {
    let Some(window) = ctx.get_json::<ErrorWindow>(key)? else {
        return Ok(());
    };
    let threshold: u64 = ctx.config_or("error_threshold", DEFAULT_ERROR_THRESHOLD)?;
    if window.errors >= threshold {
        ctx.emit_json(ERROR_ALERTS, Some(&window.service), &window);
    }
    ctx.delete(key);
    Ok(())
}

fn on_trace_line(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let line: LogLine = event.json()?;
    let Some(correlation_id) = line.correlation_id.as_deref().or(event.key_str()) else {
        return Err(Failure::reject(
            "a line of logs-by-trace needs a correlation_id",
        ));
    };
    let trace_window_ms = duration(ctx, "trace_window_ms", DEFAULT_TRACE_WINDOW_MS, 1)?;
    let ts = event.timestamp_ms;
    // The trace of a line this old has closed already (or closes with this very event):
    // starting it again would report a fragment of it as a trace of its own.
    if event.stream_time_ms >= ts + trace_window_ms {
        ctx.warn(format!(
            "dropped a late line of {correlation_id} at {ts}: traces close {trace_window_ms} ms after their first line"
        ));
        return Ok(());
    }
    let key = format!("{TRACE_PREFIX}{correlation_id}");
    let mut trace = ctx.get_json::<Trace>(&key)?.unwrap_or_else(|| Trace {
        correlation_id: correlation_id.to_owned(),
        first_ms: ts,
        last_ms: ts,
        events: 0,
        errors: 0,
        services: Vec::new(),
        root_cause: None,
    });
    if trace.events == 0 || ts < trace.first_ms {
        trace.first_ms = ts;
        ctx.schedule_timer(&key, ts + trace_window_ms);
    }
    trace.add(&line, ts);
    ctx.set_json(&key, &trace);
    Ok(())
}

impl Trace {
    fn add(&mut self, line: &LogLine, ts: i64) {
        self.last_ms = self.last_ms.max(ts);
        self.events += 1;
        let known = self.services.len();
        match self.services.iter_mut().find(|(s, _)| *s == line.service) {
            Some((_, seen)) => *seen = (*seen).min(ts),
            None if known < MAX_TRACE_SERVICES => self.services.push((line.service.clone(), ts)),
            None => {}
        }
        if !line.is_error() {
            return;
        }
        self.errors += 1;
        // Lines of a trace reach this partition from several, in no set order: the root
        // cause is the earliest error by time, not the first to arrive.
        if self
            .root_cause
            .as_ref()
            .is_none_or(|root| ts < root.timestamp_ms)
        {
            self.root_cause = Some(RootCause {
                service: line.service.clone(),
                message: line.message.clone(),
                timestamp_ms: ts,
            });
        }
    }
}

fn close_trace(key: &str, ctx: &mut Context) -> Result<(), Failure> {
    let Some(trace) = ctx.get_json::<Trace>(key)? else {
        return Ok(());
    };
    if trace.errors > 0 {
        let mut services: Vec<&(String, i64)> = trace.services.iter().collect();
        // Stable: services first seen at the same millisecond keep their arrival order.
        services.sort_by_key(|(_, seen)| *seen);
        let report = CorrelatedTrace {
            correlation_id: &trace.correlation_id,
            services: services.iter().map(|(s, _)| s.as_str()).collect(),
            events: trace.events,
            errors: trace.errors,
            first_ms: trace.first_ms,
            last_ms: trace.last_ms,
            root_cause: trace.root_cause.as_ref().map(|root| Culprit {
                service: &root.service,
                message: &root.message,
            }),
        };
        ctx.emit_json(CORRELATED_TRACES, Some(&trace.correlation_id), &report);
    }
    ctx.delete(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use streamfn::Level;
    use streamfn::testing::TestHost;

    use super::*;

    const T0: i64 = 1_767_225_600_000;
    const MINUTE: i64 = 60_000;

    fn line(service: &str, level: &str, message: &str, trace: &str, ts: i64) -> String {
        json!({
            "timestamp_ms": ts, "service": service, "level": level, "message": message,
            "correlation_id": trace,
        })
        .to_string()
    }

    fn log(host: &mut TestHost, service: &str, level: &str, message: &str, trace: &str, ts: i64) {
        let value = line(service, level, message, trace, ts);
        host.deliver(handle, on_timer, SERVICE_LOGS, Some(service), &value, ts)
            .expect("service log handled");
    }

    fn trace_line(
        host: &mut TestHost,
        service: &str,
        level: &str,
        message: &str,
        trace: &str,
        ts: i64,
    ) {
        let value = line(service, level, message, trace, ts);
        host.deliver(handle, on_timer, LOGS_BY_TRACE, Some(trace), &value, ts)
            .expect("trace line handled");
    }

    /// Moves stream time with an INFO line of another service, as traffic does.
    fn tick(host: &mut TestHost, ts: i64) {
        log(host, "search", "INFO", "ok", "trace-tick", ts);
    }

    fn errors(host: &mut TestHost, service: &str, count: i64, from: i64) {
        for i in 0..count {
            log(
                host,
                service,
                "ERROR",
                &format!("failure {i}"),
                &format!("trace-{i}"),
                from + i * 1000,
            );
        }
    }

    #[test]
    fn an_error_burst_is_alerted_when_its_window_closes() {
        let mut host = TestHost::new();
        errors(&mut host, "checkout", 12, T0 + MINUTE);
        assert_eq!(
            host.timers(),
            vec![(
                b"w/checkout/1767225600000".to_vec(),
                T0 + 5 * MINUTE + 30_000
            )]
        );
        tick(&mut host, T0 + 5 * MINUTE + 29_999);
        assert!(
            host.outputs_json::<Value>(ERROR_ALERTS).is_empty(),
            "still in grace"
        );
        tick(&mut host, T0 + 5 * MINUTE + 30_000);
        let alerts: Vec<Value> = host.outputs_json(ERROR_ALERTS);
        assert_eq!(
            alerts,
            vec![json!({
                "service": "checkout", "window_start_ms": T0, "window_end_ms": T0 + 5 * MINUTE,
                "errors": 12, "samples": ["failure 0", "failure 1", "failure 2"],
            })]
        );
        let alert = host
            .outputs()
            .iter()
            .find(|o| o.topic == ERROR_ALERTS)
            .expect("alert record");
        assert_eq!(alert.key.as_deref(), Some(&b"checkout"[..]));
        assert_eq!(alert.timestamp_ms, Some(T0 + 5 * MINUTE + 30_000));
        assert!(
            host.state_json::<Value>("w/checkout/1767225600000")
                .is_none()
        );
    }

    #[test]
    fn errors_below_the_threshold_or_in_other_windows_do_not_alert() {
        let mut host = TestHost::new();
        errors(&mut host, "payments", 6, T0 + 4 * MINUTE);
        errors(&mut host, "payments", 6, T0 + 5 * MINUTE);
        errors(&mut host, "auth", 9, T0 + 5 * MINUTE + 100);
        tick(&mut host, T0 + 20 * MINUTE);
        assert!(host.outputs_json::<Value>(ERROR_ALERTS).is_empty());
        assert!(host.timers().is_empty());
        assert_eq!(host.state_len(), 0, "closed windows leave no state");
    }

    #[test]
    fn late_errors_are_dropped_and_errors_within_grace_count() {
        let mut host = TestHost::new().with_config("error_threshold", "2");
        log(&mut host, "auth", "ERROR", "first", "trace-1", T0 + MINUTE);
        tick(&mut host, T0 + 5 * MINUTE + 10_000);
        log(
            &mut host,
            "auth",
            "ERROR",
            "in grace",
            "trace-2",
            T0 + 2 * MINUTE,
        );
        tick(&mut host, T0 + 5 * MINUTE + 30_000);
        log(
            &mut host,
            "auth",
            "ERROR",
            "too late",
            "trace-3",
            T0 + 3 * MINUTE,
        );
        let alerts: Vec<Value> = host.outputs_json(ERROR_ALERTS);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["errors"], 2);
        assert_eq!(alerts[0]["samples"], json!(["first", "in grace"]));
        assert!(
            host.logs()
                .iter()
                .any(|(level, message)| *level == Level::Warn && message.contains("late ERROR"))
        );
        assert_eq!(host.state_len(), 0, "the late error opened no window");
        assert!(host.timers().is_empty());
    }

    #[test]
    fn window_and_grace_follow_config() {
        let mut host = TestHost::new()
            .with_config("window_ms", "60000")
            .with_config("grace_ms", "0")
            .with_config("error_threshold", "3");
        errors(&mut host, "search", 3, T0 + 10_000);
        tick(&mut host, T0 + MINUTE);
        let alerts: Vec<Value> = host.outputs_json(ERROR_ALERTS);
        assert_eq!(alerts[0]["window_end_ms"], T0 + MINUTE);

        let mut host = TestHost::new().with_config("window_ms", "0");
        let event = host.event(
            SERVICE_LOGS,
            Some("a"),
            &line("a", "ERROR", "x", "t", T0),
            T0,
        );
        assert!(matches!(
            host.handle(handle, &event),
            Err(Failure::Reject(_))
        ));
    }

    #[test]
    fn every_line_is_repartitioned_by_correlation_id_unchanged() {
        let mut host = TestHost::new();
        let value = line("checkout", "INFO", "cart updated", "trace-000042", T0);
        host.deliver(handle, on_timer, SERVICE_LOGS, Some("checkout"), &value, T0)
            .expect("handled");
        let value =
            json!({"timestamp_ms": T0, "service": "auth", "level": "WARN", "message": "no trace"});
        host.deliver(
            handle,
            on_timer,
            SERVICE_LOGS,
            Some("auth"),
            &value.to_string(),
            T0,
        )
        .expect("handled");
        let outputs = host.outputs();
        assert_eq!(
            outputs.len(),
            1,
            "a line without a trace has nothing to meet"
        );
        assert_eq!(outputs[0].topic, LOGS_BY_TRACE);
        assert_eq!(outputs[0].key.as_deref(), Some(&b"trace-000042"[..]));
        assert_eq!(
            outputs[0].value.as_deref(),
            Some(line("checkout", "INFO", "cart updated", "trace-000042", T0).as_bytes())
        );
        assert_eq!(outputs[0].timestamp_ms, Some(T0));
    }

    #[test]
    fn a_failed_trace_is_reported_with_its_root_cause_when_it_closes() {
        let mut host = TestHost::new();
        // Out of order, as lines from several partitions arrive.
        trace_line(
            &mut host,
            "checkout",
            "INFO",
            "cart updated",
            "trace-7",
            T0 + 10,
        );
        trace_line(&mut host, "auth", "INFO", "token ok", "trace-7", T0 + 5);
        trace_line(
            &mut host,
            "payments",
            "ERROR",
            "acquirer returned 503",
            "trace-7",
            T0 + 30,
        );
        trace_line(
            &mut host,
            "inventory",
            "INFO",
            "stock ok",
            "trace-7",
            T0 + 20,
        );
        trace_line(
            &mut host,
            "checkout",
            "ERROR",
            "payment failed",
            "trace-7",
            T0 + 40,
        );
        trace_line(&mut host, "search", "INFO", "healthy", "trace-8", T0 + 50);
        assert_eq!(
            host.timers(),
            vec![
                (b"t/trace-7".to_vec(), T0 + 5 + 60 * MINUTE),
                (b"t/trace-8".to_vec(), T0 + 50 + 60 * MINUTE)
            ]
        );

        trace_line(
            &mut host,
            "search",
            "INFO",
            "later",
            "trace-9",
            T0 + 60 * MINUTE + 4,
        );
        assert!(
            host.outputs_json::<Value>(CORRELATED_TRACES).is_empty(),
            "trace-7 is still open"
        );
        trace_line(
            &mut host,
            "search",
            "INFO",
            "later",
            "trace-9",
            T0 + 60 * MINUTE + 60,
        );
        let reports: Vec<Value> = host.outputs_json(CORRELATED_TRACES);
        assert_eq!(
            reports,
            vec![json!({
                "correlation_id": "trace-7",
                "services": ["auth", "checkout", "inventory", "payments"],
                "events": 5, "errors": 2, "first_ms": T0 + 5, "last_ms": T0 + 40,
                "root_cause": {"service": "payments", "message": "acquirer returned 503"},
            })],
            "trace-8 had no error"
        );
        assert!(host.state_json::<Value>("t/trace-7").is_none());
        assert!(host.state_json::<Value>("t/trace-8").is_none());
    }

    #[test]
    fn late_trace_lines_are_dropped() {
        let mut host = TestHost::new().with_config("trace_window_ms", "1000");
        trace_line(&mut host, "auth", "ERROR", "boom", "trace-1", T0);
        trace_line(&mut host, "auth", "INFO", "tick", "trace-2", T0 + 5000);
        assert_eq!(host.outputs_json::<Value>(CORRELATED_TRACES).len(), 1);
        trace_line(
            &mut host,
            "checkout",
            "ERROR",
            "straggler",
            "trace-1",
            T0 + 10,
        );
        assert!(host.state_json::<Value>("t/trace-1").is_none());
        assert_eq!(host.outputs_json::<Value>(CORRELATED_TRACES).len(), 1);
    }

    #[test]
    fn a_trace_remembers_a_bounded_number_of_services() {
        let mut host = TestHost::new();
        for i in 0..100 {
            trace_line(
                &mut host,
                &format!("svc-{i:03}"),
                "INFO",
                "ok",
                "trace-1",
                T0 + i,
            );
        }
        let trace: Trace = host.state_json("t/trace-1").expect("trace state");
        assert_eq!(trace.events, 100);
        assert_eq!(trace.services.len(), MAX_TRACE_SERVICES);
    }

    #[test]
    fn malformed_records_are_rejected() {
        let mut host = TestHost::new();
        for (topic, value) in [
            (SERVICE_LOGS, "{"),
            (LOGS_BY_TRACE, r#"{"service":"a"}"#),
            ("other", "{}"),
        ] {
            let event = host.event(topic, Some("k"), value, T0);
            assert!(
                matches!(host.handle(handle, &event), Err(Failure::Reject(_))),
                "{topic} {value}"
            );
        }
        let bad = Timer {
            key: b"x/1".to_vec(),
            at_ms: T0,
        };
        assert!(on_timer(&bad, &mut Context::new(&mut host)).is_err());
        assert!(host.outputs().is_empty());
    }
}
