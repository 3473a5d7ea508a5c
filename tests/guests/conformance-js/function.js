// The conformance function in JavaScript: one command per event, exercising every import
// and every outcome, as tests/conformance/SPEC.md specifies. Its outputs must match the
// Rust reference (tests/guests/conformance-rust) byte for byte.

import { Reject, Retry, text } from './streamfn.js';

const LEVELS = new Set(['debug', 'warn', 'error']);

/** Splits at the first space, as Rust's `split_once(' ')` does, with '' when there is none. */
function splitOnce(line) {
  const at = line.indexOf(' ');
  return at < 0 ? [line, ''] : [line.slice(0, at), line.slice(at + 1)];
}

/** Runs the event's command. */
export function handle(event, ctx) {
  const command = event.valueText() ?? '';
  const [op, rest] = splitOnce(command);
  const out = (value) => ctx.emit('out', event.key, value);
  switch (op) {
    case 'set': {
      const [k, v] = splitOnce(rest);
      ctx.set(k, v);
      return out(`set ${k}`);
    }
    case 'get':
      return out(`get ${rest}=${text(ctx.get(rest)) ?? '-'}`);
    case 'del':
      ctx.delete(rest);
      return out(`del ${rest}`);
    case 'scan': {
      const entries = ctx.scan(rest).map((e) => ` ${text(e.key)}=${text(e.value)}`);
      return out(`scan ${rest}:${entries.join('')}`);
    }
    case 'emit': {
      const [topic, value] = splitOnce(rest);
      return ctx.emit(topic, event.key, value, { h: 'v' });
    }
    case 'config':
      return out(`config ${rest}=${ctx.config(rest) ?? '-'}`);
    case 'log': {
      const [level, message] = splitOnce(rest);
      ctx.log(LEVELS.has(level) ? level : 'info', message);
      return out(`log ${level}`);
    }
    case 'timer': {
      const [k, at] = splitOnce(rest);
      const atMs = /^[+-]?\d+$/.test(at) ? BigInt(at) : null;
      if (atMs === null || BigInt.asIntN(64, atMs) !== atMs) throw new Reject(`bad time: ${at}`);
      ctx.scheduleTimer(k, atMs);
      return out(`timer ${k} ${atMs}`);
    }
    case 'cancel':
      ctx.cancelTimer(rest);
      return out(`cancel ${rest}`);
    case 'time':
      return out(`time ${event.timestampMs} ${event.streamTimeMs}`);
    case 'meta':
      return out(`meta ${event.topic} ${event.partition} ${event.offset} ${event.keyText() ?? '-'}`);
    case 'headers':
      return out(['headers', ...event.headers.map((h) => `${h.key}=${text(h.value)}`)].join(' '));
    case 'reject':
      throw new Reject(rest);
    case 'retry':
      throw new Retry(rest);
    case 'trap':
      throw new Error('trap requested');
    default:
      throw new Reject(`unknown command: ${command}`);
  }
}

/** Reports a fired timer. */
export function onTimer(timer, ctx) {
  ctx.emit('out', timer.key, `fired ${text(timer.key)} ${timer.atMs}`);
}
