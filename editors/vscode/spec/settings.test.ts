import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SERVER_KEYS, defaultsReader, documentSelector, serverCommand, serverSettings } from '../src/settings';

test('the server gets every dgLsp.* key but the client-only ones', () => {
  assert.deepEqual(SERVER_KEYS, ['modelPath', 'device', 'quantization', 'maxCanvas', 'steps', 'invokedSteps',
    'candidates', 'contextTokens', 'enabledLanguages', 'seed', 'minConfidence']);
  const settings = serverSettings(defaultsReader({ steps: 4 }));
  assert.equal(settings.steps, 4);
  assert.equal(settings.device, 'auto');
  assert.ok(!('client' in settings) && !('client.serverCommand' in settings));
});

test('the server command comes from dgLsp.client.serverCommand', () => {
  assert.deepEqual(serverCommand(defaultsReader()), { command: 'dg-lsp', args: ['serve'] });
  assert.deepEqual(serverCommand(defaultsReader({ 'client.serverCommand': ['python', '-m', 'dg_lsp', 'serve'] })),
    { command: 'python', args: ['-m', 'dg_lsp', 'serve'] });
  assert.throws(() => serverCommand(defaultsReader({ 'client.serverCommand': [] })), /non-empty list/);
});

test('the document selector follows dgLsp.enabledLanguages', () => {
  assert.deepEqual(documentSelector(defaultsReader({ enabledLanguages: ['python'] })),
    [{ scheme: 'file', language: 'python' }, { scheme: 'untitled', language: 'python' }]);
  assert.deepEqual(documentSelector(defaultsReader({ enabledLanguages: ['*'] })), [{ scheme: 'file' }, { scheme: 'untitled' }]);
  assert.equal(documentSelector(defaultsReader()).length, 18); // nine languages, two schemes
});
