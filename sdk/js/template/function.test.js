// Unit tests of function.js on the SDK's in-memory host, without wasm: `npm test`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as fn from './function.js';
import { Reject, TestHost } from './streamfn.js';

test('counts the events of each key', () => {
  const host = new TestHost({ to: 'counts' });
  host.deliver(fn, 'in', 'a', 'x', 1000);
  host.deliver(fn, 'in', 'a', 'y', 1001);
  host.deliver(fn, 'in', 'b', 'z', 1002);
  assert.deepEqual(host.outputsJson('counts'), [
    { key: 'a', count: 1 },
    { key: 'a', count: 2 },
    { key: 'b', count: 1 },
  ]);
});

test('an event without a key is rejected and leaves no effects', () => {
  const host = new TestHost();
  assert.throws(() => host.deliver(fn, 'in', null, 'x', 1000), Reject);
  assert.deepEqual(host.outputs, []);
});
