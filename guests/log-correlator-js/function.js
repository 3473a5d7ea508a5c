// log-correlator in JavaScript: a port of guests/log-correlator (Rust) with the same topics,
// config keys, defaults, state and timer keys and output JSON, so either build can take
// over the other's deployment. It counts ERROR lines per service in tumbling windows and
// alerts on bursts, and gathers each request's lines by correlation id to report the traces
// that failed, with their root cause.
//
// Service logs arrive keyed by service, so a trace's lines are spread over partitions. The
// function re-emits every line to `logs-by-trace`, keyed by correlation id, and a second
// deployment of the same component reads that topic (the Kafka Streams repartition
// pattern): there all lines of a trace meet in one partition's state. Windows close on
// stream time, so they close at the same place on every replay. It is not a log store: a
// trace keeps counts and its root cause, never its lines.

import { Reject } from './streamfn.js';

const SERVICE_LOGS = 'service-logs';
const LOGS_BY_TRACE = 'logs-by-trace';
const ERROR_ALERTS = 'error-alerts';
const CORRELATED_TRACES = 'correlated-traces';

/** Length of the error-counting windows, unless config `window_ms` says. */
export const DEFAULT_WINDOW_MS = 5 * 60_000;
/** How long after its end a window still takes late errors, unless config `grace_ms` says. */
export const DEFAULT_GRACE_MS = 30_000;
/** Errors in one window that make an alert, unless config `error_threshold` says. */
export const DEFAULT_ERROR_THRESHOLD = 10;
/** How long a trace gathers lines from its first one, unless config `trace_window_ms` says. */
export const DEFAULT_TRACE_WINDOW_MS = 60 * 60_000;

/** Messages an error alert quotes. */
const MAX_SAMPLES = 3;
/** Services a trace remembers; lines of further ones still count. */
const MAX_TRACE_SERVICES = 32;

/** State keys and timer keys of error windows: `w/<service>/<window start>`. */
const WINDOW_PREFIX = 'w/';
/** State keys and timer keys of traces: `t/<correlation id>`. */
const TRACE_PREFIX = 't/';

/** Handles a line of `service-logs` or of the function's own `logs-by-trace`. */
export function handle(event, ctx) {
  switch (event.topic) {
    case SERVICE_LOGS:
      return onServiceLog(event, ctx);
    case LOGS_BY_TRACE:
      return onTraceLine(event, ctx);
    default:
      throw new Reject(`log-correlator reads \`${SERVICE_LOGS}\` and \`${LOGS_BY_TRACE}\`, not \`${event.topic}\``);
  }
}

/** Closes an error window or a trace whose time has come. */
export function onTimer(timer, ctx) {
  const key = timer.keyText();
  if (key?.startsWith(WINDOW_PREFIX)) return closeWindow(key, ctx);
  if (key?.startsWith(TRACE_PREFIX)) return closeTrace(key, ctx);
  throw new Reject(`log-correlator schedules no timer ${JSON.stringify(new TextDecoder().decode(timer.key))}`);
}

/** The fields of a log line, in the order serde also takes them from a JSON array. */
const FIELDS = ['service', 'level', 'message', 'correlation_id'];

/**
 * A `service-logs` (and `logs-by-trace`) record, checked as the Rust version's serde
 * struct is: three text fields and an optional correlation id, from an object (other
 * fields ignored) or from an array of three or four values.
 */
function logLine(event) {
  let line = event.json();
  if (Array.isArray(line)) {
    if (line.length < 3 || line.length > 4) throw new Reject(`value is not the expected JSON: a log line array has 3 or 4 values, not ${line.length}`);
    line = Object.fromEntries(line.map((value, i) => [FIELDS[i], value]));
  }
  if (line === null || typeof line !== 'object') {
    throw new Reject('value is not the expected JSON: expected a log line object');
  }
  for (const field of FIELDS.slice(0, 3)) {
    if (typeof line[field] !== 'string') {
      throw new Reject(`value is not the expected JSON: \`${field}\` must be a string`);
    }
  }
  const id = line.correlation_id;
  if (id != null && typeof id !== 'string') {
    throw new Reject('value is not the expected JSON: `correlation_id` must be a string');
  }
  return { service: line.service, level: line.level, message: line.message, correlationId: id ?? null };
}

/** ASCII-only case folding, as Rust's `eq_ignore_ascii_case`. */
const isError = (line) => /^error$/i.test(line.level);

/** A whole number from config, parsed as Rust parses an i64 (or a u64 when `unsigned`). */
function configNumber(ctx, key, fallback, unsigned = false) {
  const raw = ctx.config(key);
  if (raw == null) return fallback;
  const value = (unsigned ? /^\+?\d+$/ : /^[+-]?\d+$/).test(raw) ? BigInt(raw) : null;
  const fits = value !== null && (unsigned ? BigInt.asUintN(64, value) : BigInt.asIntN(64, value)) === value;
  if (!fits) throw new Reject(`config ${key}=${JSON.stringify(raw)} does not parse`);
  return Number(value);
}

/** A duration from config of at least `min` milliseconds. */
function duration(ctx, key, fallback, min) {
  const value = configNumber(ctx, key, fallback);
  if (value < min) throw new Reject(`config ${key}=${value} must be at least ${min}`);
  return value;
}

function onServiceLog(event, ctx) {
  const line = logLine(event);
  if (isError(line)) countError(line, event, ctx);
  if (line.correlationId !== null) {
    ctx.emit(LOGS_BY_TRACE, line.correlationId, event.value, event.headers);
  }
}

function countError(line, event, ctx) {
  const windowMs = duration(ctx, 'window_ms', DEFAULT_WINDOW_MS, 1);
  const graceMs = duration(ctx, 'grace_ms', DEFAULT_GRACE_MS, 0);
  const ts = event.timestampMs;
  const start = ts - (((ts % windowMs) + windowMs) % windowMs);
  const end = start + windowMs;
  const closesAt = end + graceMs;
  if (event.streamTimeMs >= closesAt) {
    ctx.warn(`dropped a late ERROR of ${line.service} at ${ts}: its window [${start}, ${end}) closed at stream time ${closesAt}`);
    return;
  }
  const key = `${WINDOW_PREFIX}${line.service}/${start}`;
  let window = ctx.getJson(key);
  if (window === null) {
    ctx.scheduleTimer(key, closesAt);
    window = { service: line.service, window_start_ms: start, window_end_ms: end, errors: 0, samples: [] };
  }
  window.errors += 1;
  if (window.samples.length < MAX_SAMPLES) window.samples.push(line.message);
  ctx.setJson(key, errorWindow(window));
}

/** An error window with its fields in the order the Rust version writes them. */
function errorWindow(w) {
  return {
    service: w.service,
    window_start_ms: w.window_start_ms,
    window_end_ms: w.window_end_ms,
    errors: w.errors,
    samples: w.samples,
  };
}

function closeWindow(key, ctx) {
  const window = ctx.getJson(key);
  if (window === null) return;
  const threshold = configNumber(ctx, 'error_threshold', DEFAULT_ERROR_THRESHOLD, true);
  if (window.errors >= threshold) ctx.emitJson(ERROR_ALERTS, window.service, errorWindow(window));
  ctx.delete(key);
}

function onTraceLine(event, ctx) {
  const line = logLine(event);
  const correlationId = line.correlationId ?? event.keyText();
  if (correlationId === null) throw new Reject('a line of logs-by-trace needs a correlation_id');
  const traceWindowMs = duration(ctx, 'trace_window_ms', DEFAULT_TRACE_WINDOW_MS, 1);
  const ts = event.timestampMs;
  // The trace of a line this old has closed already (or closes with this very event):
  // starting it again would report a fragment of it as a trace of its own.
  if (event.streamTimeMs >= ts + traceWindowMs) {
    ctx.warn(`dropped a late line of ${correlationId} at ${ts}: traces close ${traceWindowMs} ms after their first line`);
    return;
  }
  const key = `${TRACE_PREFIX}${correlationId}`;
  const trace = ctx.getJson(key) ?? {
    correlation_id: correlationId,
    first_ms: ts,
    last_ms: ts,
    events: 0,
    errors: 0,
    services: [],
    root_cause: null,
  };
  if (trace.events === 0 || ts < trace.first_ms) {
    trace.first_ms = ts;
    ctx.scheduleTimer(key, ts + traceWindowMs);
  }
  addLine(trace, line, ts);
  ctx.setJson(key, {
    correlation_id: trace.correlation_id,
    first_ms: trace.first_ms,
    last_ms: trace.last_ms,
    events: trace.events,
    errors: trace.errors,
    services: trace.services,
    root_cause: trace.root_cause,
  });
}

/** Counts a line into a trace; `services` holds `[service, time of its first line]`. */
function addLine(trace, line, ts) {
  trace.last_ms = Math.max(trace.last_ms, ts);
  trace.events += 1;
  const seen = trace.services.find(([service]) => service === line.service);
  if (seen) {
    seen[1] = Math.min(seen[1], ts);
  } else if (trace.services.length < MAX_TRACE_SERVICES) {
    trace.services.push([line.service, ts]);
  }
  if (!isError(line)) return;
  trace.errors += 1;
  // Lines of a trace reach this partition from several, in no set order: the root cause
  // is the earliest error by time, not the first to arrive.
  if (trace.root_cause === null || ts < trace.root_cause.timestamp_ms) {
    trace.root_cause = { service: line.service, message: line.message, timestamp_ms: ts };
  }
}

function closeTrace(key, ctx) {
  const trace = ctx.getJson(key);
  if (trace === null) return;
  if (trace.errors > 0) {
    // Stable: services first seen at the same millisecond keep their arrival order.
    const services = [...trace.services].sort((a, b) => a[1] - b[1]).map(([service]) => service);
    const root = trace.root_cause;
    ctx.emitJson(CORRELATED_TRACES, trace.correlation_id, {
      correlation_id: trace.correlation_id,
      services,
      events: trace.events,
      errors: trace.errors,
      first_ms: trace.first_ms,
      last_ms: trace.last_ms,
      root_cause: root === null ? null : { service: root.service, message: root.message },
    });
  }
  ctx.delete(key);
}
