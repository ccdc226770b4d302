import assert from 'node:assert/strict';
import { test } from 'node:test';
import { positionArguments, rewriteArguments, statusText, statusTooltip, type DgStatus } from '../src/protocol';

const ready: DgStatus = {
  version: '0.1.0', state: 'ready', error: '', model: '/models/tiny', device: 'cpu', lastLatencyMs: 84.4,
  requests: 12, cancelled: 3, superseded: 5, cacheHits: 2,
};

test('rewrite arguments carry the range and a trimmed instruction, none when blank', () => {
  const range = { start: { line: 1, character: 0 }, end: { line: 2, character: 4 } };
  assert.deepEqual(rewriteArguments('file:///a.py', range, '  shorter '), [{ uri: 'file:///a.py', range, instruction: 'shorter' }]);
  assert.deepEqual(rewriteArguments('file:///a.py', range, '  '), [{ uri: 'file:///a.py', range }]);
  assert.deepEqual(positionArguments('file:///a.py', { line: 3, character: 1 }),
    [{ uri: 'file:///a.py', position: { line: 3, character: 1 } }]);
});

test('status text shows the state, and the last latency once the model is ready', () => {
  assert.equal(statusText(ready), '$(sparkle) dg: ready 84 ms');
  assert.equal(statusText({ ...ready, lastLatencyMs: null }), '$(sparkle) dg: ready');
  assert.equal(statusText({ ...ready, state: 'loading' }), '$(loading~spin) dg: loading');
  assert.equal(statusText({ ...ready, state: 'failed', error: 'no model' }), '$(error) dg: failed');
  assert.equal(statusText(undefined), '$(debug-disconnect) dg: off');
});

test('status tooltip names the model, device, error and counters', () => {
  const tip = statusTooltip({ ...ready, state: 'failed', error: 'no model configured' });
  assert.match(tip, /model failed \(no model configured\)/);
  assert.match(tip, /\/models\/tiny on cpu/);
  assert.match(tip, /12 model requests, 3 cancelled, 5 superseded, 2 cache hits/);
});
