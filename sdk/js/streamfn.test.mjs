// Tests of the JavaScript SDK in Node: the glue `exportFunction` puts between the WIT
// bindings and a function (outcomes, timestamps, traps, config), and `TestHost`.
// Run with `node --test sdk/js/streamfn.test.mjs`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Reject, Retry, TestHost, exportFunction, text } from './streamfn.js';

const bytes = (s) => new TextEncoder().encode(s);

/** The WIT interfaces as the bindings present them, recording every call. */
function fakeInterfaces(config = []) {
  const calls = { sent: [], logs: [], configReads: 0, scheduled: [] };
  const state = new Map();
  return {
    calls,
    state: {
      get: (k) => state.get(text(k)),
      set: (k, v) => state.set(text(k), v),
      delete: (k) => state.delete(text(k)),
      scan: (prefix, after, limit) =>
        [...state.keys()]
          .sort()
          .filter((k) => k.startsWith(text(prefix)) && (after === undefined || k > text(after)))
          .slice(0, limit)
          .map((k) => ({ key: bytes(k), value: state.get(k) })),
    },
    emit: { send: (output) => calls.sent.push(output) },
    log: { write: (level, message) => calls.logs.push([level, message]) },
    config: {
      all: () => {
        calls.configReads += 1;
        return config;
      },
    },
    timers: { schedule: (k, at) => calls.scheduled.push([text(k), at]), cancel: () => {} },
  };
}

function rawEvent(offset, value, extra = {}) {
  return {
    topic: 'in',
    partition: 0,
    offset: BigInt(offset),
    timestampMs: 1000n + BigInt(offset),
    streamTimeMs: 1000n + BigInt(offset),
    key: bytes('k'),
    value: value === undefined ? undefined : bytes(value),
    headers: [],
    ...extra,
  };
}

test('a decoded event names the schema that wrote it', async () => {
  const { Event } = await import('./streamfn.js');
  const decoded = new Event(
    rawEvent(0, '{}', {
      headers: [
        { key: 'streamfn.schema.id', value: bytes('42') },
        { key: 'streamfn.schema.subject', value: bytes('orders-value') },
      ],
    }),
  );
  assert.equal(decoded.schemaId(), 42);
  assert.equal(decoded.schemaSubject(), 'orders-value');
  const plain = new Event(rawEvent(1, '{}'));
  assert.equal(plain.schemaId(), null);
  assert.equal(plain.schemaSubject(), null);
});

test('outcomes follow what the handler returns or throws', () => {
  const wit = fakeInterfaces();
  const handler = exportFunction(
    {
      handle(event) {
        if (event.valueText() === 'bad') throw new Reject('bad record');
        if (event.valueText() === 'later') throw new Retry('try later');
        return event.json();
      },
    },
    wit,
  );
  const outcomes = handler.handle([rawEvent(0, '{}'), rawEvent(1, 'bad'), rawEvent(2, 'later'), rawEvent(3, '{')]);
  assert.deepEqual(outcomes.slice(0, 3), [{ tag: 'ok' }, { tag: 'reject', val: 'bad record' }, { tag: 'retry', val: 'try later' }]);
  assert.equal(outcomes[3].tag, 'reject');
  assert.match(outcomes[3].val, /^value is not the expected JSON/);
});

test('outputs carry the handled event timestamp and bytes for text', () => {
  const wit = fakeInterfaces();
  const handler = exportFunction(
    {
      handle(event, ctx) {
        ctx.emit('out', event.key, 'v', { h: 'x' });
        ctx.emitJson('out', null, { n: 1 }, [['a', bytes('b')]]);
      },
    },
    wit,
  );
  handler.handle([rawEvent(5, 'x')]);
  const [first, second] = wit.calls.sent;
  assert.equal(first.timestampMs, 1005n);
  assert.equal(text(first.key), 'k');
  assert.equal(text(first.value), 'v');
  assert.deepEqual(first.headers.map((h) => [h.key, text(h.value)]), [['h', 'x']]);
  assert.equal(second.key, undefined);
  assert.equal(text(second.value), '{"n":1}');
  assert.deepEqual(second.headers.map((h) => [h.key, text(h.value)]), [['a', 'b']]);
});

test('configuration is read from the host once per instance', () => {
  const wit = fakeInterfaces([['to', 'there']]);
  const seen = [];
  const handler = exportFunction({ handle: (_event, ctx) => seen.push(ctx.config('to'), ctx.config('nope')) }, wit);
  handler.handle([rawEvent(0, 'a'), rawEvent(1, 'b')]);
  handler.handle([rawEvent(2, 'c')]);
  assert.deepEqual(seen, ['there', null, 'there', null, 'there', null]);
  assert.equal(wit.calls.configReads, 1);
});

test('an unexpected exception prints its message to stderr, then traps', () => {
  const printed = [];
  const original = console.error;
  console.error = (line) => printed.push(line);
  try {
    const handler = exportFunction({ handle: () => null.oops }, fakeInterfaces());
    assert.throws(() => handler.handle([rawEvent(7, 'x')]), (thrown) => typeof thrown === 'string');
  } finally {
    console.error = original;
  }
  assert.match(printed.join('\n'), /^handle \(offset 7\) threw TypeError: /);
});

test('timer failures become the error result; a missing onTimer rejects', () => {
  const timer = { key: bytes('t'), atMs: 5n };
  const failing = exportFunction({ handle() {}, onTimer: () => { throw new Reject('no'); } }, fakeInterfaces());
  assert.deepEqual(failing.onTimers([timer]), { tag: 'err', val: 'reject: no' });
  const none = exportFunction({ handle() {} }, fakeInterfaces());
  assert.match(none.onTimers([timer]).val, /^reject: a timer fired \(t at 5 ms\)/);
  const wit = fakeInterfaces();
  const stamping = exportFunction({ handle() {}, onTimer: (t, ctx) => ctx.emit('out', t.key, 'fired') }, wit);
  assert.deepEqual(stamping.onTimers([timer]), { tag: 'ok' });
  assert.equal(wit.calls.sent[0].timestampMs, 5n);
});

test('an async handler is awaited event by event', async () => {
  const wit = fakeInterfaces();
  const handler = exportFunction(
    {
      async handle(event, ctx) {
        if (event.valueText() === 'bad') throw new Reject('no');
        ctx.emit('out', null, event.value);
      },
    },
    wit,
  );
  const outcomes = await handler.handle([rawEvent(0, 'a'), rawEvent(1, 'bad'), rawEvent(2, 'c')]);
  assert.deepEqual(outcomes, [{ tag: 'ok' }, { tag: 'reject', val: 'no' }, { tag: 'ok' }]);
  assert.deepEqual(wit.calls.sent.map((o) => text(o.value)), ['a', 'c']);
});

test('scan pages through the host and stops at max', () => {
  const wit = fakeInterfaces();
  const handler = exportFunction(
    {
      handle(_event, ctx) {
        for (let i = 0; i < 1500; i++) ctx.set(`p/${String(i).padStart(4, '0')}`, 'v');
        ctx.set('q/0', 'v');
        const all = ctx.scan('p/');
        const some = ctx.scan('p/', 3);
        ctx.emit('out', null, `${all.length} ${text(all.at(-1).key)} ${some.map((e) => text(e.key)).join(',')}`);
      },
    },
    wit,
  );
  handler.handle([rawEvent(0, 'x')]);
  assert.equal(text(wit.calls.sent[0].value), '1500 p/1499 p/0000,p/0001,p/0002');
});

test('event helpers: strict text, headers, missing values', () => {
  const wit = fakeInterfaces();
  const seen = [];
  const handler = exportFunction(
    {
      handle(event) {
        seen.push(event.keyText(), event.header('h') && text(event.header('h')), event.headerText('none'), event.offset, event.streamTimeMs);
        event.json();
      },
    },
    wit,
  );
  const outcomes = handler.handle([rawEvent(3, undefined, { key: new Uint8Array([0xff]), headers: [{ key: 'h', value: bytes('x') }] })]);
  assert.deepEqual(seen, [null, 'x', null, 3, 1003]);
  assert.deepEqual(outcomes, [{ tag: 'reject', val: 'record has no value' }]);
});

test('TestHost undoes a failed event and fires due timers in order', () => {
  const fn = {
    handle(event, ctx) {
      ctx.set('last', event.value);
      if (event.valueText() === 'bad') throw new Reject('no');
      ctx.scheduleTimer(`t/${event.valueText()}`, event.timestampMs + 10);
    },
    onTimer(timer, ctx) {
      ctx.emit('fired', timer.key, `${timer.keyText()} ${timer.atMs}`);
    },
  };
  const host = new TestHost();
  host.deliver(fn, 'in', 'k', 'b', 100);
  host.deliver(fn, 'in', 'k', 'a', 100);
  assert.throws(() => host.deliver(fn, 'in', 'k', 'bad', 105), Reject);
  assert.equal(text(host.state.get(bytes('last'))), 'a');
  assert.deepEqual(host.pendingTimers(), [['t/a', 110], ['t/b', 110]]);
  host.deliver(fn, 'in', 'k', 'c', 120);
  assert.deepEqual(host.outputs.map((o) => text(o.value)), ['t/a 110', 't/b 110']);
  assert.deepEqual(host.outputs.map((o) => o.timestampMs), [110, 110]);
  assert.deepEqual(host.pendingTimers(), [['t/c', 130]]);
});

/** A batch buffer of contract 0.2.0 holding `events` of `partition`. */
function encodeBatch(partition, events) {
  const out = [];
  const u32 = (n) => out.push(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255);
  const i64 = (n) => {
    u32(n % 2 ** 32);
    u32(Math.floor(n / 2 ** 32));
  };
  const put = (b) => {
    u32(b.length);
    out.push(...b);
  };
  const topics = [...new Set(events.map((e) => e.topic))];
  u32(partition);
  u32(topics.length);
  topics.forEach((t) => put(bytes(t)));
  u32(events.length);
  for (const e of events) {
    u32(topics.indexOf(e.topic));
    i64(e.offset);
    i64(e.ts);
    i64(e.ts);
    if (e.key == null) u32(0xffffffff);
    else put(bytes(e.key));
    put(bytes(e.value));
    u32(0);
  }
  return Uint8Array.from(out);
}

test('on contract 0.2.0 a batch arrives in one buffer and its effects leave in one', () => {
  const reads = [];
  const applied = [];
  const stored = new Map([['a', bytes('1')]]);
  const interfaces = {
    state: {
      get: (k) => {
        reads.push(text(k));
        return stored.get(text(k));
      },
      scan: () => [],
    },
    effects: { apply: (buf) => applied.push(Uint8Array.from(buf)) },
    log: { write: () => {} },
    config: { all: () => [] },
  };
  const handler = exportFunction(
    {
      handle(event, ctx) {
        if (event.valueText() === 'bad') throw new Reject('bad value');
        const n = Number(ctx.get(event.key)?.length ? text(ctx.get(event.key)) : 0) + 1;
        ctx.set(event.key, String(n));
        ctx.emit('out', event.key, `${event.topic}:${event.offset}:${n}`);
      },
    },
    interfaces,
  );
  const failed = handler.handle(
    encodeBatch(2, [
      { topic: 't', offset: 7, ts: 1000, key: 'a', value: 'x' },
      { topic: 'u', offset: 8, ts: 2 ** 33 + 5, key: 'a', value: 'bad' },
      { topic: 't', offset: 9, ts: 1001, key: 'b', value: 'y' },
      { topic: 't', offset: 10, ts: 1002, key: 'a', value: 'z' },
    ]),
  );
  assert.deepEqual(failed, [{ index: 1, failure: { tag: 'reject', val: 'bad value' } }]);
  // Each key crosses once; later reads, of the call's own writes too, come from the cache.
  assert.deepEqual(reads, ['a', 'b']);
  assert.equal(applied.length, 1);
  // The effects decoded: set a=2, send, set b=1, send, set a=3, send.
  const buf = applied[0];
  const view = new DataView(buf.buffer);
  let at = 0;
  const u32 = () => ((at += 4), view.getUint32(at - 4, true));
  const take = () => {
    const n = u32();
    at += n;
    return text(buf.subarray(at - n, at));
  };
  const seen = [];
  while (at < buf.length) {
    const tag = buf[at++];
    if (tag === 0) {
      seen.push(`set ${take()}=${take()}`);
    } else {
      assert.equal(tag, 2);
      const topic = take();
      const key = take();
      const value = take();
      assert.equal(u32(), 0);
      assert.equal(buf[at++], 1);
      const ts = view.getUint32(at, true) + view.getInt32(at + 4, true) * 2 ** 32;
      at += 8;
      seen.push(`send ${topic} ${key} ${value} @${ts}`);
    }
  }
  assert.deepEqual(seen, [
    'set a=2',
    'send out a t:7:2 @1000',
    'set b=1',
    'send out b t:9:1 @1001',
    'set a=3',
    'send out a t:10:3 @1002',
  ]);
  // The next call reads from the host again.
  handler.handle(encodeBatch(2, [{ topic: 't', offset: 11, ts: 1003, key: 'a', value: 'x' }]));
  assert.deepEqual(reads, ['a', 'b', 'a']);
});

test('on contract 0.2.0 a key given as text or as its bytes is one key in the call', () => {
  const reads = [];
  const interfaces = {
    state: {
      get: (k) => {
        reads.push(Array.from(k));
        return undefined;
      },
      scan: () => [],
    },
    effects: { apply: () => {} },
    log: { write: () => {} },
    config: { all: () => [] },
  };
  const seen = [];
  const handler = exportFunction(
    {
      handle(_event, ctx) {
        ctx.set('a', 'text');
        seen.push(text(ctx.get(bytes('a'))));
        // Not UTF-8: its own key, not the text of the character numbered 0xff.
        ctx.set(Uint8Array.of(0xff), 'byte');
        seen.push(ctx.get('\u00ff'));
        seen.push(text(ctx.get(Uint8Array.of(0xff))));
        // A byte-order mark is part of a key, never dropped from it.
        ctx.set(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61), 'marked');
        seen.push(text(ctx.get('a')));
        seen.push(text(ctx.get('\ufeffa')));
        // A lone surrogate is sent as U+FFFD, so both name one key.
        ctx.set('\ud800', 'lone');
        seen.push(text(ctx.get('\ufffd')));
        seen.push(text(ctx.get(bytes('\ufffd'))));
      },
    },
    interfaces,
  );
  assert.deepEqual(handler.handle(encodeBatch(0, [{ topic: 't', offset: 0, ts: 1, key: 'k', value: 'v' }])), []);
  assert.deepEqual(seen, ['text', null, 'byte', 'text', 'marked', 'lone', 'lone']);
  // Only U+00FF was read from the host: every other read was of what the call wrote.
  assert.deepEqual(reads, [[0xc3, 0xbf]]);
});
