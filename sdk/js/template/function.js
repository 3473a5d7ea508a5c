// {{name}}: a Streamfn function. It counts the events of each key in the partition's state
// and sends {"key": KEY, "count": N} to the topic named by config `to` (default `out`).

import { Reject } from './streamfn.js';

export function handle(event, ctx) {
  const key = event.keyText();
  // A bad record is rejected (dead-lettered now); any other exception is a bug and traps.
  if (key === null) throw new Reject('events need a text key');
  const count = (ctx.getJson(`count/${key}`) ?? 0) + 1;
  ctx.setJson(`count/${key}`, count);
  ctx.emitJson(ctx.config('to') ?? 'out', key, { key, count });
}
