import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import './vscodeMock';
import type { DgStatus } from '../src/protocol';
import { StatusBar } from '../src/statusBar';

const base: DgStatus = {
  version: '0.1.0', state: 'ready', error: '', model: 'm', device: 'cpu', lastLatencyMs: 42,
  requests: 1, cancelled: 0, superseded: 0, cacheHits: 0,
};

test('the item shows the state and latency the server reports', async () => {
  const bar = new StatusBar({ status: async () => base });
  await bar.refresh();
  assert.equal(bar.item.text, '$(sparkle) dg: ready 42 ms');
  assert.equal(bar.item.command, 'dgLsp.showStatus');
  bar.dispose();
});

test('a failed model turns the item red; an unreachable server shows off', async () => {
  const failed = new StatusBar({ status: async () => ({ ...base, state: 'failed', error: 'bad weights' }) });
  await failed.refresh();
  assert.equal((failed.item.backgroundColor as { id: string }).id, 'statusBarItem.errorBackground');
  failed.dispose();
  const down = new StatusBar({ status: async () => { throw new Error('connection closed'); } });
  await down.refresh();
  assert.equal(down.item.text, '$(debug-disconnect) dg: off');
  down.dispose();
});

test('an unreachable remote server shows with a warning until it answers again', async () => {
  const states: DgStatus['state'][] = ['unreachable', 'ready'];
  let calls = 0;
  const bar = new StatusBar({ status: async () => ({ ...base, state: states[Math.min(calls++, 1)],
    error: 'cannot connect to http://gpu-box:8000' }) }, 5);
  await bar.refresh();
  assert.equal(bar.item.text, '$(cloud-offline) dg: unreachable');
  assert.equal((bar.item.backgroundColor as { id: string }).id, 'statusBarItem.warningBackground');
  assert.match(String(bar.item.tooltip), /cannot connect/);
  await sleep(100);
  assert.equal(bar.item.text, '$(sparkle) dg: ready 42 ms');
  assert.equal(bar.item.backgroundColor, undefined);
  bar.dispose();
});

test('while the model loads the item polls until it is ready', async () => {
  const states: DgStatus['state'][] = ['loading', 'loading', 'ready'];
  let calls = 0;
  const bar = new StatusBar({ status: async () => ({ ...base, state: states[Math.min(calls++, 2)] }) }, 5);
  await bar.refresh();
  assert.equal(bar.item.text, '$(loading~spin) dg: loading');
  await sleep(100);
  assert.equal(calls, 3);
  assert.equal(bar.item.text, '$(sparkle) dg: ready 42 ms');
  bar.dispose();
});

test('refreshes asked for while typing are coalesced', async () => {
  let calls = 0;
  const bar = new StatusBar({ status: async () => { calls++; return base; } });
  for (let i = 0; i < 20; i++) bar.refreshLater(10);
  await sleep(60);
  assert.equal(calls, 1);
  bar.dispose();
});
