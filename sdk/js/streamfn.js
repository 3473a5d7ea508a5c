// Streamfn's JavaScript SDK: a function is a plain `handle(event, ctx)` over one event at a
// time, and optionally `onTimer(timer, ctx)`. This module is plain JavaScript with no
// import of the WIT interfaces, so a function and this SDK load in Node for unit tests
// (see `TestHost`); `build.mjs` generates the entry module that hands the real host
// interfaces to `exportFunction`. It is not the host: it never sees batches being split,
// offsets committed or records dead-lettered; it only says what one event should do.

const encoder = new TextEncoder();
const lossy = new TextDecoder();
const strict = new TextDecoder('utf-8', { fatal: true });

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

function toHeaders(headers) {
  if (headers == null) return [];
  const pairs = Array.isArray(headers)
    ? headers.map((h) => (Array.isArray(h) ? h : [h.key, h.value]))
    : Object.entries(headers);
  return pairs.map(([key, value]) => ({ key: String(key), value: toBytes(value, `header ${key}`) }));
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

/** One record of an input topic. */
export class Event {
  constructor(raw) {
    /** The input topic it came from. */
    this.topic = raw.topic;
    /** The partition; the state a handler sees belongs to it. */
    this.partition = raw.partition;
    /** Offset within the topic partition (exact up to 2^53). */
    this.offset = Number(raw.offset);
    /** Producer timestamp, milliseconds since the Unix epoch. */
    this.timestampMs = Number(raw.timestampMs);
    /** The partition's stream time with this event counted: the largest timestamp seen. */
    this.streamTimeMs = Number(raw.streamTimeMs);
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
    return this.headers.find((h) => h.key === name)?.value ?? null;
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

/**
 * Handed to every handler call: the partition's state, the output topics, the deploy
 * configuration, logs and timers. Records emitted through it carry the timestamp of the
 * event (or timer) being handled, as Kafka Streams does, so a replay writes the same ones.
 */
export class Context {
  #host;
  #nowMs;

  /** A context over `host` (the WIT interfaces or a `TestHost`) at time `nowMs` (a BigInt). */
  constructor(host, nowMs) {
    this.#host = host;
    this.#nowMs = nowMs;
  }

  /** The state value under `key`, as bytes, or null. */
  get(key) {
    return this.#host.state.get(toBytes(key, 'state key')) ?? null;
  }

  /** The state value under `key` parsed as JSON, or null. Unparsable state rejects the event. */
  getJson(key) {
    const raw = this.get(key);
    if (raw == null) return null;
    try {
      const body = strictText(raw);
      if (body == null) throw new SyntaxError('it is not UTF-8');
      return JSON.parse(body);
    } catch (err) {
      throw new Reject(`state key ${JSON.stringify(text(toBytes(key, 'state key')))} does not hold the expected JSON: ${err.message}`);
    }
  }

  /** Stores `value` (text or bytes) under `key`. */
  set(key, value) {
    this.#host.state.set(toBytes(key, 'state key'), toBytes(value, 'state value'));
  }

  /** Stores `value` as JSON under `key`. */
  setJson(key, value) {
    this.set(key, toJson(value));
  }

  /** Removes `key`; removing a missing key does nothing. */
  delete(key) {
    this.#host.state.delete(toBytes(key, 'state key'));
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
      const page = this.#host.state.scan(start, entries.at(-1)?.key, want);
      for (const entry of page) entries.push(entry);
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
    this.#host.emit.send({
      topic,
      key: toOptionalBytes(key, 'record key'),
      value: toOptionalBytes(value, 'record value'),
      headers: toHeaders(headers),
      timestampMs: this.#nowMs,
    });
  }

  /** Sends `value` serialised as JSON to `topic`. */
  emitJson(topic, key, value, headers) {
    this.emit(topic, key, toJson(value), headers);
  }

  /** The deploy-time configuration value under `key`, or null. */
  config(key) {
    return this.#host.configValue(key);
  }

  /** Writes a log line at `level`: `debug`, `info`, `warn` or `error`. */
  log(level, message) {
    if (!LEVELS.has(level)) {
      throw new TypeError(`log level must be debug, info, warn or error, not ${JSON.stringify(level)}`);
    }
    this.#host.log.write(level, String(message));
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
    this.#host.timers.schedule(toBytes(key, 'timer key'), toMs(atMs, 'timer time'));
  }

  /** Cancels the timer under `key`, if there is one. */
  cancelTimer(key) {
    this.#host.timers.cancel(toBytes(key, 'timer key'));
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
  #all;

  constructor(configInterface) {
    this.configInterface = configInterface;
  }

  value(key) {
    // An instance serves one deployment version, whose configuration never changes, so
    // it crosses into the host once. Not at module load: that runs at build time.
    this.#all ??= new Map(this.configInterface.all());
    return this.#all.get(key) ?? null;
  }
}

/** The handler's view of the host on contract 0.1.0: the WIT interfaces, one call each. */
class WitHost {
  constructor(interfaces) {
    this.state = interfaces.state;
    this.emit = interfaces.emit;
    this.log = interfaces.log;
    this.timers = interfaces.timers;
    this.config = new ConfigCache(interfaces.config);
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

/** A growing buffer of effects, encoded as contract 0.2.0 says. */
class EffectWriter {
  constructor() {
    this.buf = new Uint8Array(1 << 16);
    this.view = new DataView(this.buf.buffer);
    this.length = 0;
  }

  room(n) {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.length));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(b) {
    this.room(1);
    this.buf[this.length++] = b;
  }

  u32(n) {
    this.room(4);
    this.view.setUint32(this.length, n, true);
    this.length += 4;
  }

  i64(ms) {
    this.room(8);
    if (typeof ms === 'bigint') {
      this.view.setBigInt64(this.length, ms, true);
    } else {
      const high = Math.floor(ms / TWO_32);
      this.view.setUint32(this.length, ms - high * TWO_32, true);
      this.view.setInt32(this.length + 4, high, true);
    }
    this.length += 8;
  }

  bytes(bytes) {
    this.u32(bytes.length);
    this.room(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  text(value) {
    this.bytes(encoder.encode(value));
  }

  optional(bytes) {
    if (bytes == null) this.u32(NONE);
    else this.bytes(bytes);
  }
}

/** Effects held before they are handed to the host, at most; more are applied at once. */
const HELD_EFFECTS = 1 << 20;

/** Bytes as a string of one character per byte: a Map key with the bytes' identity. */
const cacheKey = (bytes) => {
  let key = '';
  for (let i = 0; i < bytes.length; i += 4096) {
    key += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
  }
  return key;
};

/**
 * The handler's view of the host on contract 0.2.0: state reads of a call go through a
 * cache that also holds the call's own writes, and the call's effects are written into
 * one buffer that crosses into the host once.
 */
class BatchHost {
  constructor(interfaces) {
    const self = this;
    const reads = interfaces.state;
    const effects = interfaces.effects;
    this.cache = new Map();
    this.held = new EffectWriter();
    this.apply = () => {
      if (self.held.length === 0) return;
      effects.apply(self.held.buf.subarray(0, self.held.length));
      self.held.length = 0;
    };
    const hold = () => {
      if (self.held.length >= HELD_EFFECTS) self.apply();
    };
    const held = this.held;
    this.state = {
      get(key) {
        const id = cacheKey(key);
        if (self.cache.has(id)) return self.cache.get(id);
        const value = reads.get(key) ?? null;
        self.cache.set(id, value);
        return value;
      },
      set(key, value) {
        held.u8(0);
        held.bytes(key);
        held.bytes(value);
        self.cache.set(cacheKey(key), value.slice());
        hold();
      },
      delete(key) {
        held.u8(1);
        held.bytes(key);
        self.cache.set(cacheKey(key), null);
        hold();
      },
      scan(prefix, after, limit) {
        // The host merges what it was handed with what is stored.
        self.apply();
        return reads.scan(prefix, after, limit);
      },
    };
    this.emit = {
      send(output) {
        held.u8(2);
        held.text(output.topic);
        held.optional(output.key);
        held.optional(output.value);
        held.u32(output.headers.length);
        for (const header of output.headers) {
          held.text(header.key);
          held.bytes(header.value);
        }
        if (output.timestampMs == null) {
          held.u8(0);
        } else {
          held.u8(1);
          held.i64(output.timestampMs);
        }
        hold();
      },
    };
    this.timers = {
      schedule(key, atMs) {
        held.u8(3);
        held.bytes(key);
        held.i64(atMs);
        hold();
      },
      cancel(key) {
        held.u8(4);
        held.bytes(key);
        hold();
      },
    };
    this.log = interfaces.log;
    this.config = new ConfigCache(interfaces.config);
  }

  configValue(key) {
    return this.config.value(key);
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

/** The events of a batch buffer of contract 0.2.0, as the raw records `Event` takes. */
function decodeBatch(batch) {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let at = 0;
  const u32 = () => {
    const n = view.getUint32(at, true);
    at += 4;
    return n;
  };
  const i64 = () => {
    const n = view.getUint32(at, true) + view.getInt32(at + 4, true) * TWO_32;
    at += 8;
    return n;
  };
  const bytes = () => {
    const len = u32();
    const slice = batch.subarray(at, at + len);
    at += len;
    return slice;
  };
  const optional = () => {
    if (view.getUint32(at, true) === NONE) {
      at += 4;
      return null;
    }
    return bytes();
  };
  const partition = u32();
  const topics = [];
  for (let n = u32(); n > 0; n--) topics.push(lossy.decode(bytes()));
  const raws = new Array(u32());
  for (let i = 0; i < raws.length; i++) {
    const topic = topics[u32()];
    const offset = i64();
    const timestampMs = i64();
    const streamTimeMs = i64();
    const key = optional();
    const value = optional();
    const headers = [];
    for (let n = u32(); n > 0; n--) headers.push({ key: lossy.decode(bytes()), value: bytes() });
    raws[i] = { topic, partition, offset, timestampMs, streamTimeMs, key, value, headers };
  }
  return raws;
}

/** The events that did not succeed, as contract 0.2.0 returns them. */
function failedEvents(outcomes) {
  const failed = [];
  for (let index = 0; index < outcomes.length; index++) {
    if (outcomes[index] !== OK) failed.push({ index, failure: outcomes[index] });
  }
  return failed;
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
  const handled = (outcomes) => {
    host.finish();
    return batched ? failedEvents(outcomes) : outcomes;
  };
  const fired = (result) => {
    if (result === OK) host.finish();
    return result;
  };

  // An async handler is awaited event by event, so order and effects stay as in sync code.
  async function finishBatch(raws, outcomes, pending, event, index) {
    for (let i = index; i < raws.length; i++) {
      try {
        if (i > index) {
          event = new Event(raws[i]);
          pending = fn.handle(event, new Context(host, raws[i].timestampMs));
        }
        await pending;
        outcomes.push(OK);
      } catch (thrown) {
        outcomes.push(outcome(thrown, `handle (offset ${event.offset})`));
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
      const raws = batched ? decodeBatch(batch) : batch;
      const outcomes = [];
      for (let i = 0; i < raws.length; i++) {
        const event = new Event(raws[i]);
        try {
          const result = fn.handle(event, new Context(host, raws[i].timestampMs));
          if (isThenable(result)) return finishBatch(raws, outcomes, result, event, i);
          outcomes.push(OK);
        } catch (thrown) {
          outcomes.push(outcome(thrown, `handle (offset ${event.offset})`));
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
export class TestHost {
  constructor(config = {}) {
    this.config = new Map(Object.entries(config));
    this.streamTimeMs = 0;
    this.nextOffset = 0;
    /** Records sent, as `{ topic, key, value, headers, timestampMs }` with byte fields. */
    this.outputs = [];
    /** Log lines, as `[level, message]`. */
    this.logs = [];
    this.stateMap = new Map();
    this.timerMap = new Map();
    const self = this;
    this.state = {
      get: (key) => self.stateMap.get(keyOf(key)),
      set: (key, value) => self.stateMap.set(keyOf(key), value.slice()),
      delete: (key) => self.stateMap.delete(keyOf(key)),
      scan: (prefix, after, limit) =>
        [...self.stateMap.entries()]
          .map(([k, value]) => ({ key: bytesOf(k), value }))
          .filter((e) => startsWith(e.key, prefix) && (after == null || compareBytes(e.key, after) > 0))
          .sort((a, b) => compareBytes(a.key, b.key))
          .slice(0, Math.min(limit, SCAN_PAGE)),
    };
    this.emit = { send: (output) => self.outputs.push({ ...output, timestampMs: Number(output.timestampMs) }) };
    this.log = { write: (level, message) => self.logs.push([level, message]) };
    this.timers = {
      schedule: (key, atMs) => self.timerMap.set(keyOf(key), Number(atMs)),
      cancel: (key) => self.timerMap.delete(keyOf(key)),
    };
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
