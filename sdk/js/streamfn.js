// Streamfn's JavaScript SDK: a function is a plain `handle(event, ctx)` over one event at a
// time, and optionally `onTimer(timer, ctx)`. This module is plain JavaScript with no
// import of the WIT interfaces, so a function and this SDK load in Node for unit tests
// (see `TestHost`); `build.mjs` generates the entry module that hands the real host
// interfaces to `exportFunction`. It is not the host: it never sees batches being split,
// offsets committed or records dead-lettered; it only says what one event should do.

const encoder = new TextEncoder();
const lossy = new TextDecoder();
const strict = new TextDecoder('utf-8', { fatal: true });
// Keeps a leading byte-order mark, which the others drop: a key's text is all its bytes.
const exact = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// A brand rather than `instanceof`, so a failure thrown through a second copy of this
// module (a bundler, a test importing another path) is still recognised.
const FAILURE = Symbol.for('streamfn.failure');

/** Largest scan page the host serves in one call. */
const SCAN_PAGE = 1000;

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

/**
 * Thrown by a handler when the record is bad and will never succeed: the host discards
 * the event's effects and sends it to the dead-letter topic now, with `reason`.
 */
export class Reject extends Error {
  constructor(reason) {
    super(String(reason));
    this.name = 'Reject';
    this[FAILURE] = 'reject';
  }

  /** The reason given. */
  get reason() {
    return this.message;
  }
}

/**
 * Thrown by a handler on a transient failure: the host discards the event's effects,
 * delivers it again after a backoff and dead-letters it once the retry budget is spent.
 */
export class Retry extends Error {
  constructor(reason) {
    super(String(reason));
    this.name = 'Retry';
    this[FAILURE] = 'retry';
  }

  /** The reason given. */
  get reason() {
    return this.message;
  }
}

/** Bytes as text, with U+FFFD for invalid UTF-8; `null` stays `null`. */
export function text(bytes) {
  return bytes == null ? null : lossy.decode(bytes);
}

function strictText(bytes) {
  if (bytes == null) return null;
  try {
    return strict.decode(bytes);
  } catch {
    return null;
  }
}

// The bindings build their values in another realm than the function's modules, so
// their arrays and errors fail `instanceof`; the built-in tag tells the type across realms.
const tagOf = (value) => Object.prototype.toString.call(value);

/** Keys and values may be given as text (sent as UTF-8) or as bytes. */
function toBytes(value, what) {
  if (typeof value === 'string') return encoder.encode(value);
  const tag = tagOf(value);
  if (tag === '[object Uint8Array]') return value;
  if (tag === '[object ArrayBuffer]') return new Uint8Array(value);
  throw new TypeError(`${what} must be a string or a Uint8Array, not ${describe(value)}`);
}

function toOptionalBytes(value, what) {
  return value == null ? undefined : toBytes(value, what);
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? tagOf(value).slice(8, -1) : typeof value;
}

// The hot paths below use indexed loops rather than `for…of`, `map` or `find`: in the
// interpreted engine those run the engine's own JavaScript for every element.
function toHeaders(headers) {
  const out = [];
  if (headers == null) return out;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i];
      const pair = Array.isArray(h);
      out.push(header(pair ? h[0] : h.key, pair ? h[1] : h.value));
    }
  } else {
    const names = Object.keys(headers);
    for (let i = 0; i < names.length; i++) out.push(header(names[i], headers[names[i]]));
  }
  return out;
}

function header(key, value) {
  return { key: String(key), value: toBytes(value, `header ${key}`) };
}

/** JSON text of `value`; `undefined` and functions have none, and must not turn into a tombstone. */
function toJson(value) {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`${describe(value)} has no JSON form`);
  return json;
}

function toMs(value, what) {
  if (typeof value === 'bigint') return value;
  if (!Number.isSafeInteger(value)) {
    throw new TypeError(`${what} must be a whole number of milliseconds, not ${value}`);
  }
  return BigInt(value);
}

/** A number of contract 0.2.0's buffers as is; a BigInt of 0.1.0's records as a number. */
const asNumber = (n) => (typeof n === 'number' ? n : Number(n));

/** One record of an input topic. */
export class Event {
  constructor(raw) {
    /** The input topic it came from. */
    this.topic = raw.topic;
    /** The partition; the state a handler sees belongs to it. */
    this.partition = raw.partition;
    /** Offset within the topic partition (exact up to 2^53). */
    this.offset = asNumber(raw.offset);
    /** Producer timestamp, milliseconds since the Unix epoch. */
    this.timestampMs = asNumber(raw.timestampMs);
    /** The partition's stream time with this event counted: the largest timestamp seen. */
    this.streamTimeMs = asNumber(raw.streamTimeMs);
    /** Record key, or null. */
    this.key = raw.key ?? null;
    /** Record value, or null for a tombstone. */
    this.value = raw.value ?? null;
    /** Headers in producer order, as `{ key, value }` with byte values. */
    this.headers = raw.headers ?? [];
  }

  /** The key as text; null when there is none or it is not UTF-8. */
  keyText() {
    return strictText(this.key);
  }

  /** The value as text; null when there is none or it is not UTF-8. */
  valueText() {
    return strictText(this.value);
  }

  /** The value parsed as JSON. A missing or malformed value rejects the event. */
  json() {
    if (this.value == null) throw new Reject('record has no value');
    const body = strictText(this.value);
    if (body == null) throw new Reject('value is not the expected JSON: it is not UTF-8');
    try {
      return JSON.parse(body);
    } catch (err) {
      throw new Reject(`value is not the expected JSON: ${err.message}`);
    }
  }

  /** The value of the first header named `name`, as bytes, or null. */
  header(name) {
    for (let i = 0; i < this.headers.length; i++) {
      if (this.headers[i].key === name) return this.headers[i].value;
    }
    return null;
  }

  /** The value of the first header named `name`, as text, or null. */
  headerText(name) {
    return text(this.header(name));
  }

  /**
   * The id of the registry schema that wrote the value, for an input the host decoded
   * (deployed with `--input-format TOPIC=avro|protobuf|json-schema`), or null.
   */
  schemaId() {
    const id = this.headerText('streamfn.schema.id');
    return id == null || !/^[0-9]+$/.test(id) ? null : Number(id);
  }

  /** The registry subject of the schema that wrote the value, or null. */
  schemaSubject() {
    return this.headerText('streamfn.schema.subject');
  }
}

/** A stream-time timer that came due. */
export class Timer {
  constructor(raw) {
    /** The key it was scheduled under, as bytes. */
    this.key = raw.key;
    /** The stream time it was scheduled for, in milliseconds. */
    this.atMs = Number(raw.atMs);
  }

  /** The key as text; null when it is not UTF-8. */
  keyText() {
    return strictText(this.key);
  }
}

// The context's own fields, under symbols rather than `#private` names: the engine builds
// an object with private fields several times slower, and one is built per event.
const HOST = Symbol('streamfn.host');
const NOW = Symbol('streamfn.now');

/**
 * Handed to every handler call: the partition's state, the output topics, the deploy
 * configuration, logs and timers. Records emitted through it carry the timestamp of the
 * event (or timer) being handled, as Kafka Streams does, so a replay writes the same ones.
 */
export class Context {
  /** A context over `host` (see `WitHost` for what it offers) at time `nowMs` (milliseconds). */
  constructor(host, nowMs) {
    this[HOST] = host;
    this[NOW] = nowMs;
  }

  /** The state value under `key`, as bytes, or null. */
  get(key) {
    return this[HOST].get(key);
  }

  /** The state value under `key` parsed as JSON, or null. Unparsable state rejects the event. */
  getJson(key) {
    const raw = this[HOST].get(key);
    if (raw == null) return null;
    try {
      return JSON.parse(strict.decode(raw));
    } catch (err) {
      const why = err instanceof SyntaxError ? err.message : 'it is not UTF-8';
      throw new Reject(`state key ${JSON.stringify(text(toBytes(key, 'state key')))} does not hold the expected JSON: ${why}`);
    }
  }

  /** Stores `value` (text or bytes) under `key`. */
  set(key, value) {
    this[HOST].set(key, value);
  }

  /** Stores `value` as JSON under `key`. */
  setJson(key, value) {
    this[HOST].set(key, toJson(value));
  }

  /** Removes `key`; removing a missing key does nothing. */
  delete(key) {
    this[HOST].delete(key);
  }

  /**
   * Up to `max` state entries whose keys start with `prefix`, in key order, as
   * `{ key, value }` with byte values. Fetched from the host a page at a time.
   */
  scan(prefix, max = Infinity) {
    const start = toBytes(prefix, 'scan prefix');
    const entries = [];
    while (entries.length < max) {
      const want = Math.min(max - entries.length, SCAN_PAGE);
      const page = this[HOST].scan(start, entries.at(-1)?.key, want);
      for (let i = 0; i < page.length; i++) entries.push(page[i]);
      if (page.length < want) break;
    }
    return entries;
  }

  /**
   * Sends a record to `topic`, one of the outputs declared at deploy. Key and value are
   * text, bytes or null; `headers` is an object of names to values or an array of
   * `[name, value]` pairs or `{ key, value }` records (such as `event.headers`).
   */
  emit(topic, key, value, headers) {
    this[HOST].send(topic, key, value, headers, this[NOW]);
  }

  /** Sends `value` serialised as JSON to `topic`. */
  emitJson(topic, key, value, headers) {
    this[HOST].send(topic, key, toJson(value), headers, this[NOW]);
  }

  /** The deploy-time configuration value under `key`, or null. */
  config(key) {
    return this[HOST].configValue(key);
  }

  /** Writes a log line at `level`: `debug`, `info`, `warn` or `error`. */
  log(level, message) {
    if (!LEVELS.has(level)) {
      throw new TypeError(`log level must be debug, info, warn or error, not ${JSON.stringify(level)}`);
    }
    this[HOST].log.write(level, String(message));
  }

  debug(message) {
    this.log('debug', message);
  }

  info(message) {
    this.log('info', message);
  }

  warn(message) {
    this.log('warn', message);
  }

  error(message) {
    this.log('error', message);
  }

  /** Asks for `onTimer` once stream time reaches `atMs`; replaces a timer of the same key. */
  scheduleTimer(key, atMs) {
    this[HOST].timers.schedule(toBytes(key, 'timer key'), toMs(atMs, 'timer time'));
  }

  /** Cancels the timer under `key`, if there is one. */
  cancelTimer(key) {
    this[HOST].timers.cancel(toBytes(key, 'timer key'));
  }
}

/** The failure kind of a thrown value: 'reject', 'retry', or undefined for a bug. */
function failureOf(thrown) {
  return thrown != null && typeof thrown === 'object' ? thrown[FAILURE] : undefined;
}

/**
 * An exception that is neither Reject nor Retry is a bug, so the call traps, as a Rust
 * panic does. The host puts the last 8 lines of the guest's stderr in the dead letter's
 * reason, and the runtime prints the trapping value after ours, so the message and a few
 * of the function's own stack frames are printed first, in few enough lines to be kept.
 */
function trap(thrown, where, { token, frames }) {
  const isError = tagOf(thrown) === '[object Error]';
  const message = isError ? `${thrown.name}: ${thrown.message}` : `uncaught ${describe(thrown)} ${String(thrown)}`;
  const stack = (isError && typeof thrown.stack === 'string' ? thrown.stack.split('\n') : [])
    .filter((frame) => frame && !/(^|[@/])(streamfn\.js|initializer\.js):/.test(frame))
    .slice(0, frames)
    .map((frame) => `    at ${frame}`);
  console.error([`${where} threw ${message}`, ...stack].join('\n'));
  throw token;
}

// A thrown string traps `handle` and the runtime prints it in one line (two with its
// abort notice). `onTimers` takes a thrown string for its error result, so it traps on
// an object instead, which the bindings fail to encode as one: five lines of theirs.
const HANDLE_TRAP = { token: 'streamfn: trapped on the exception printed above', frames: 4 };
const TIMER_TRAP = { token: new Error(HANDLE_TRAP.token), frames: 2 };

function isThenable(value) {
  return value != null && typeof value.then === 'function';
}

const OK = Object.freeze({ tag: 'ok' });

function outcome(thrown, where) {
  switch (failureOf(thrown)) {
    case 'reject':
      return { tag: 'reject', val: thrown.message };
    case 'retry':
      return { tag: 'retry', val: thrown.message };
    default:
      return trap(thrown, where, HANDLE_TRAP);
  }
}

/** The deploy-time configuration, read from the host once per instance. */
class ConfigCache {
  constructor(configInterface) {
    this.configInterface = configInterface;
    this.all = null;
  }

  value(key) {
    // An instance serves one deployment version, whose configuration never changes, so
    // it crosses into the host once. Not at module load: that runs at build time.
    this.all ??= new Map(this.configInterface.all());
    return this.all.get(key) ?? null;
  }
}

/** A record for the `send` of contract 0.1.0 (and `TestHost`), its fields checked. */
function outputRecord(topic, key, value, headers, timestampMs) {
  return {
    topic,
    key: toOptionalBytes(key, 'record key'),
    value: toOptionalBytes(value, 'record value'),
    headers: toHeaders(headers),
    timestampMs,
  };
}

/**
 * The handler's view of the host on contract 0.1.0: the WIT interfaces, one call each.
 * Every host offers what `Context` uses: `get`, `set`, `delete` and `scan` of state,
 * `send` of a record, `log.write`, `timers.schedule` and `timers.cancel`, `configValue`.
 */
class WitHost {
  constructor(interfaces) {
    this.state = interfaces.state;
    this.emit = interfaces.emit;
    this.log = interfaces.log;
    this.timers = interfaces.timers;
    this.config = new ConfigCache(interfaces.config);
  }

  get(key) {
    return this.state.get(toBytes(key, 'state key')) ?? null;
  }

  set(key, value) {
    this.state.set(toBytes(key, 'state key'), toBytes(value, 'state value'));
  }

  delete(key) {
    this.state.delete(toBytes(key, 'state key'));
  }

  scan(prefix, after, limit) {
    return this.state.scan(prefix, after, limit);
  }

  send(topic, key, value, headers, timestampMs) {
    this.emit.send(outputRecord(topic, key, value, headers, timestampMs));
  }

  configValue(key) {
    return this.config.value(key);
  }

  /** Starts a call. */
  begin() {}

  /** Ends a call that succeeded. */
  finish() {}
}

/** The length written for an absent `bytes?` in the buffers of contract 0.2.0. */
const NONE = 0xffffffff;
const TWO_32 = 2 ** 32;

/** Effect tags of contract 0.2.0. */
const SET = 0;
const DELETE = 1;
const SEND = 2;
const SCHEDULE = 3;
const CANCEL = 4;

/**
 * A growing buffer of effects, encoded as contract 0.2.0 says. Each effect makes room for
 * all its fields at once and writes them in place: in the interpreted engine a function
 * call costs about as much as a dozen simple statements, so the writer makes few.
 */
class EffectWriter {
  constructor() {
    this.buf = new Uint8Array(1 << 16);
    this.view = new DataView(this.buf.buffer);
    this.length = 0;
  }

  /** Makes room for `n` more bytes and returns where they start. */
  room(n) {
    const at = this.length;
    if (at + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < at + n) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.buf.subarray(0, at));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    this.length = at + n;
    return at;
  }

  /** A `set` (with `value`) or a `delete` (without). */
  keyed(tag, key, value) {
    const valueLength = value === undefined ? 0 : 4 + value.length;
    let at = this.room(5 + key.length + valueLength);
    const { buf, view } = this;
    buf[at] = tag;
    view.setUint32(at + 1, key.length, true);
    buf.set(key, at + 5);
    if (value !== undefined) {
      at += 5 + key.length;
      view.setUint32(at, value.length, true);
      buf.set(value, at + 4);
    }
  }

  /** Writes `bytes` at `at` (room made already) and returns where the next field goes. */
  put(at, bytes) {
    this.view.setUint32(at, bytes.length, true);
    this.buf.set(bytes, at + 4);
    return at + 4 + bytes.length;
  }

  /**
   * A `send`; `topic` as UTF-8, the others checked already. Its key and value are written
   * inline rather than through `put`: with `put` for them (and for `set`), the counter's
   * events burnt 7% more fuel.
   */
  send(topic, key, value, headers, timestampMs) {
    const keyLength = key === null ? 0 : key.length;
    const valueLength = value === null ? 0 : value.length;
    let size = (timestampMs == null ? 18 : 26) + topic.length + keyLength + valueLength;
    for (let i = 0; i < headers.length; i++) size += 8 + headers[i].name.length + headers[i].value.length;
    let at = this.room(size);
    const buf = this.buf;
    const view = this.view;
    buf[at] = SEND;
    view.setUint32(at + 1, topic.length, true);
    buf.set(topic, at + 5);
    at += 5 + topic.length;
    if (key === null) {
      view.setUint32(at, NONE, true);
    } else {
      view.setUint32(at, keyLength, true);
      buf.set(key, at + 4);
    }
    at += 4 + keyLength;
    if (value === null) {
      view.setUint32(at, NONE, true);
    } else {
      view.setUint32(at, valueLength, true);
      buf.set(value, at + 4);
    }
    at += 4 + valueLength;
    view.setUint32(at, headers.length, true);
    at += 4;
    for (let i = 0; i < headers.length; i++) at = this.put(this.put(at, headers[i].name), headers[i].value);
    if (timestampMs == null) {
      buf[at] = 0;
    } else {
      buf[at] = 1;
      this.i64(at + 1, timestampMs);
    }
  }

  /** A `schedule` or a `cancel` (without `atMs`). */
  timer(tag, key, atMs) {
    const at = this.room(5 + key.length + (atMs === undefined ? 0 : 8));
    this.buf[at] = tag;
    const next = this.put(at + 1, key);
    if (atMs !== undefined) this.i64(next, atMs);
  }

  i64(at, ms) {
    if (typeof ms === 'bigint') {
      this.view.setBigInt64(at, ms, true);
    } else {
      const high = Math.floor(ms / TWO_32);
      this.view.setUint32(at, ms - high * TWO_32, true);
      this.view.setInt32(at + 4, high, true);
    }
  }
}

const NO_HEADERS = Object.freeze([]);

/** Effects held before they are handed to the host, at most; more are applied at once. */
const HELD_EFFECTS = 1 << 20;

/**
 * The identity of a state key in the read cache, for a key given as text or as bytes:
 * text that is UTF-8's own, so that `'a'` and its bytes are one key, without encoding text
 * to look it up. Bytes that are not UTF-8 (which text never encodes to) become one
 * character per byte after a lone surrogate, which well-formed text never holds.
 */
function cacheKey(key) {
  if (typeof key === 'string') return key.toWellFormed();
  const bytes = toBytes(key, 'state key');
  try {
    return exact.decode(bytes);
  } catch {
    let id = '\ud800';
    for (let i = 0; i < bytes.length; i += 4096) {
      id += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
    }
    return id;
  }
}

/**
 * The handler's view of the host on contract 0.2.0: state reads of a call go through a
 * cache that also holds the call's own writes, and the call's effects are written into
 * one buffer that crosses into the host once.
 */
class BatchHost {
  constructor(interfaces) {
    this.reads = interfaces.state;
    this.effects = interfaces.effects;
    this.cache = new Map();
    this.held = new EffectWriter();
    this.topics = new Map();
    this.log = interfaces.log;
    this.config = new ConfigCache(interfaces.config);
    const self = this;
    this.timers = {
      schedule(key, atMs) {
        self.held.timer(SCHEDULE, key, atMs);
        self.hold();
      },
      cancel(key) {
        self.held.timer(CANCEL, key);
        self.hold();
      },
    };
  }

  // Keys given as text, the usual case, take their cache id and bytes inline rather than
  // through `cacheKey` and `toBytes`, and `set` and `send` check the held size inline:
  // each call left out is a few percent of a small handler's event.

  get(key) {
    const text = typeof key === 'string';
    const id = text ? key.toWellFormed() : cacheKey(key);
    const cached = this.cache.get(id);
    if (cached !== undefined) return cached;
    const value = this.reads.get(text ? encoder.encode(key) : toBytes(key, 'state key')) ?? null;
    this.cache.set(id, value);
    return value;
  }

  set(key, value) {
    const text = typeof key === 'string';
    const id = text ? key.toWellFormed() : cacheKey(key);
    const keyBytes = text ? encoder.encode(key) : toBytes(key, 'state key');
    // Text becomes new bytes; bytes given are copied, so a later change to them is not seen.
    const valueBytes = typeof value === 'string' ? encoder.encode(value) : toBytes(value, 'state value').slice();
    this.held.keyed(SET, keyBytes, valueBytes);
    this.cache.set(id, valueBytes);
    if (this.held.length >= HELD_EFFECTS) this.apply();
  }

  delete(key) {
    const id = cacheKey(key);
    this.held.keyed(DELETE, toBytes(key, 'state key'));
    this.cache.set(id, null);
    this.hold();
  }

  scan(prefix, after, limit) {
    // The host merges what it was handed with what is stored.
    this.apply();
    return this.reads.scan(prefix, after, limit);
  }

  send(topic, key, value, headers, timestampMs) {
    let topicBytes = this.topics.get(topic);
    if (topicBytes === undefined) {
      topicBytes = encoder.encode(topic);
      this.topics.set(topic, topicBytes);
    }
    let keyBytes = null;
    if (typeof key === 'string') keyBytes = encoder.encode(key);
    else if (key != null) keyBytes = toBytes(key, 'record key');
    let valueBytes = null;
    if (typeof value === 'string') valueBytes = encoder.encode(value);
    else if (value != null) valueBytes = toBytes(value, 'record value');
    let named = NO_HEADERS;
    if (headers != null) {
      const pairs = toHeaders(headers);
      named = new Array(pairs.length);
      for (let i = 0; i < pairs.length; i++) named[i] = { name: encoder.encode(pairs[i].key), value: pairs[i].value };
    }
    this.held.send(topicBytes, keyBytes, valueBytes, named, timestampMs);
    if (this.held.length >= HELD_EFFECTS) this.apply();
  }

  configValue(key) {
    return this.config.value(key);
  }

  /** Hands the host what is held once it is large. */
  hold() {
    if (this.held.length >= HELD_EFFECTS) this.apply();
  }

  /** Hands the host what is held. */
  apply() {
    if (this.held.length === 0) return;
    this.effects.apply(this.held.buf.subarray(0, this.held.length));
    this.held.length = 0;
  }

  /** Starts a call: what an earlier call read or held belongs to it alone. */
  begin() {
    this.cache.clear();
    this.held.length = 0;
  }

  /** Ends a call that succeeded: hands the host what it holds. */
  finish() {
    this.apply();
  }
}

/** The events of a batch buffer of contract 0.2.0, read straight from the buffer. */
function decodeBatch(batch) {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const partition = view.getUint32(0, true);
  const topics = [];
  let at = 8;
  for (let count = view.getUint32(4, true); count > 0; count--) {
    const len = view.getUint32(at, true);
    topics.push(lossy.decode(batch.subarray(at + 4, at + 4 + len)));
    at += 4 + len;
  }
  const events = new Array(view.getUint32(at, true));
  at += 4;
  for (let i = 0; i < events.length; i++) {
    const topic = topics[view.getUint32(at, true)];
    const offset = view.getUint32(at + 4, true) + view.getUint32(at + 8, true) * TWO_32;
    const timestampMs = view.getUint32(at + 12, true) + view.getInt32(at + 16, true) * TWO_32;
    const streamTimeMs = view.getUint32(at + 20, true) + view.getInt32(at + 24, true) * TWO_32;
    at += 28;
    let key = null;
    let len = view.getUint32(at, true);
    at += 4;
    if (len !== NONE) {
      key = batch.subarray(at, at + len);
      at += len;
    }
    let value = null;
    len = view.getUint32(at, true);
    at += 4;
    if (len !== NONE) {
      value = batch.subarray(at, at + len);
      at += len;
    }
    const headers = [];
    let n = view.getUint32(at, true);
    at += 4;
    for (; n > 0; n--) {
      const nameLength = view.getUint32(at, true);
      const name = lossy.decode(batch.subarray(at + 4, at + 4 + nameLength));
      at += 4 + nameLength;
      const valueLength = view.getUint32(at, true);
      headers.push({ key: name, value: batch.subarray(at + 4, at + 4 + valueLength) });
      at += 4 + valueLength;
    }
    // The fields `new Event(raw)` sets, without a raw record to copy them from.
    const event = Object.create(Event.prototype);
    event.topic = topic;
    event.partition = partition;
    event.offset = offset;
    event.timestampMs = timestampMs;
    event.streamTimeMs = streamTimeMs;
    event.key = key;
    event.value = value;
    event.headers = headers;
    events[i] = event;
  }
  return events;
}

function noTimers(timer) {
  throw new Reject(`a timer fired (${text(timer.key)} at ${timer.atMs} ms) but the function handles none`);
}

/**
 * Turns a function module `{ handle, onTimer? }` into the component's `handler` export.
 * `build.mjs` calls it in the entry module it generates, with the WIT interfaces of the
 * contract version the component is built for (0.2.0 has `effects`, 0.1.0 does not).
 */
export function exportFunction(fn, interfaces) {
  if (typeof fn.handle !== 'function') {
    throw new TypeError('a Streamfn function module must export `function handle(event, ctx)`');
  }
  const batched = interfaces.effects != null;
  const host = batched ? new BatchHost(interfaces) : new WitHost(interfaces);
  const onTimer = typeof fn.onTimer === 'function' ? fn.onTimer : noTimers;
  // 0.1.0 answers with every event's outcome, 0.2.0 with the failed events only.
  const failed = (outcomes, index, thrown, event) => {
    const failure = outcome(thrown, `handle (offset ${event.offset})`);
    outcomes.push(batched ? { index, failure } : failure);
  };
  const handled = (outcomes) => {
    host.finish();
    return outcomes;
  };
  const fired = (result) => {
    if (result === OK) host.finish();
    return result;
  };
  // An async handler is awaited event by event, so order and effects stay as in sync code.
  async function finishBatch(events, times, outcomes, pending, index) {
    for (let i = index; i < events.length; i++) {
      try {
        await (i > index ? fn.handle(events[i], new Context(host, times[i].timestampMs)) : pending);
        if (!batched) outcomes.push(OK);
      } catch (thrown) {
        failed(outcomes, i, thrown, events[i]);
      }
    }
    return handled(outcomes);
  }

  async function finishTimers(raws, pending, index) {
    for (let i = index; i < raws.length; i++) {
      const timer = new Timer(raws[i]);
      try {
        await (i > index ? onTimer(timer, new Context(host, raws[i].atMs)) : pending);
      } catch (thrown) {
        return timerFailure(thrown, timer);
      }
    }
    return fired(OK);
  }

  return {
    handle(batch) {
      host.begin();
      const events = batched ? decodeBatch(batch) : batch.map((raw) => new Event(raw));
      // Records carry the time of the event they answer, as the batch gave it: a number on
      // 0.2.0, the BigInt 0.1.0's bindings want back.
      const times = batched ? events : batch;
      const outcomes = [];
      for (let i = 0; i < events.length; i++) {
        const event = events[i];
        try {
          const result = fn.handle(event, new Context(host, times[i].timestampMs));
          if (result != null && typeof result.then === 'function') return finishBatch(events, times, outcomes, result, i);
          if (!batched) outcomes.push(OK);
        } catch (thrown) {
          failed(outcomes, i, thrown, event);
        }
      }
      return handled(outcomes);
    },

    onTimers(raws) {
      host.begin();
      for (let i = 0; i < raws.length; i++) {
        const timer = new Timer(raws[i]);
        try {
          const result = onTimer(timer, new Context(host, raws[i].atMs));
          if (isThenable(result)) return finishTimers(raws, result, i);
        } catch (thrown) {
          return timerFailure(thrown, timer);
        }
      }
      return fired(OK);
    },
  };
}

/** The first failed timer ends the call with an error result, as `reject: reason`. */
function timerFailure(thrown, timer) {
  const kind = failureOf(thrown);
  if (kind) return { tag: 'err', val: `${kind}: ${thrown.message}` };
  return trap(thrown, `onTimer (${text(timer.key)} at ${timer.atMs})`, TIMER_TRAP);
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

function startsWith(bytes, prefix) {
  return prefix.length <= bytes.length && prefix.every((b, i) => bytes[i] === b);
}

const keyOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const bytesOf = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
/** The host fires due timers in order of time, then key. */
const timerOrder = ([ka, a], [kb, b]) => a - b || compareBytes(bytesOf(ka), bytesOf(kb));

/**
 * An in-memory host for unit tests in Node, with the host's rules: a failed event leaves
 * no effects, stream time only moves forward, and due timers fire in order of time and
 * key. `host.deliver(fn, 'topic', 'key', 'value', ts)` is the usual call.
 */
export class TestHost extends WitHost {
  constructor(config = {}) {
    // The host's interfaces, as the bindings of contract 0.1.0 present them, over this
    // object's maps (which a failed event puts back, so they are looked up on each call).
    let self;
    super({
      state: {
        get: (key) => self.stateMap.get(keyOf(key)),
        set: (key, value) => self.stateMap.set(keyOf(key), value.slice()),
        delete: (key) => self.stateMap.delete(keyOf(key)),
        scan: (prefix, after, limit) =>
          [...self.stateMap.entries()]
            .map(([k, value]) => ({ key: bytesOf(k), value }))
            .filter((e) => startsWith(e.key, prefix) && (after == null || compareBytes(e.key, after) > 0))
            .sort((a, b) => compareBytes(a.key, b.key))
            .slice(0, Math.min(limit, SCAN_PAGE)),
      },
      emit: { send: (output) => self.outputs.push({ ...output, timestampMs: Number(output.timestampMs) }) },
      log: { write: (level, message) => self.logs.push([level, message]) },
      timers: {
        schedule: (key, atMs) => self.timerMap.set(keyOf(key), Number(atMs)),
        cancel: (key) => self.timerMap.delete(keyOf(key)),
      },
    });
    self = this;
    this.config = new Map(Object.entries(config));
    this.streamTimeMs = 0;
    this.nextOffset = 0;
    /** Records sent, as `{ topic, key, value, headers, timestampMs }` with byte fields. */
    this.outputs = [];
    /** Log lines, as `[level, message]`. */
    this.logs = [];
    this.stateMap = new Map();
    this.timerMap = new Map();
  }

  configValue(key) {
    return this.config.get(key) ?? null;
  }

  /** The next event of the partition, with offset and stream time filled in. */
  event(topic, key, value, timestampMs, headers) {
    this.streamTimeMs = Math.max(this.streamTimeMs, timestampMs);
    return new Event({
      topic,
      partition: 0,
      offset: this.nextOffset++,
      timestampMs,
      streamTimeMs: this.streamTimeMs,
      key: toOptionalBytes(key, 'record key'),
      value: toOptionalBytes(value, 'record value'),
      headers: toHeaders(headers),
    });
  }

  /** Runs `fn.handle` on `event`; a thrown failure undoes its effects and is rethrown. */
  handle(fn, event) {
    this.#atomically(() => fn.handle(event, new Context(this, BigInt(event.timestampMs))));
  }

  /** Builds an event, handles it, then fires the timers its stream time made due. */
  deliver(fn, topic, key, value, timestampMs, headers) {
    this.handle(fn, this.event(topic, key, value, timestampMs, headers));
    this.fireDueTimers(fn);
  }

  /** Fires every timer at or before stream time, in order of time and key. */
  fireDueTimers(fn) {
    for (;;) {
      const due = [...this.timerMap.entries()]
        .filter(([, at]) => at <= this.streamTimeMs)
        .sort(timerOrder)[0];
      if (!due) return;
      const [key, atMs] = due;
      this.timerMap.delete(key);
      const timer = new Timer({ key: bytesOf(key), atMs });
      this.#atomically(() => (fn.onTimer ?? noTimers)(timer, new Context(this, BigInt(atMs))));
    }
  }

  /** The state value under `key` parsed as JSON, or null. */
  stateJson(key) {
    const raw = this.state.get(toBytes(key, 'state key'));
    return raw == null ? null : JSON.parse(lossy.decode(raw));
  }

  /** The values sent to `topic`, parsed as JSON. */
  outputsJson(topic) {
    return this.outputs.filter((o) => o.topic === topic).map((o) => JSON.parse(lossy.decode(o.value)));
  }

  /** Pending timers as `[keyText, atMs]`, in the order they would fire. */
  pendingTimers() {
    return [...this.timerMap.entries()]
      .sort(timerOrder)
      .map(([k, at]) => [text(bytesOf(k)), at]);
  }

  #atomically(run) {
    const saved = [new Map(this.stateMap), new Map(this.timerMap), this.outputs.length];
    try {
      const result = run();
      if (isThenable(result)) throw new TypeError('TestHost runs synchronous handlers only');
    } catch (err) {
      [this.stateMap, this.timerMap] = saved;
      this.outputs.length = saved[2];
      throw err;
    }
  }
}
