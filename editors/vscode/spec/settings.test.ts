import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SERVER_KEYS, defaultsReader, documentSelector, serverCommand, serverSettings } from '../src/settings';

test('the server gets every dgLsp.* key but the client-only ones', () => {
  assert.deepEqual(SERVER_KEYS, ['modelPath', 'device', 'quantization', 'maxCanvas', 'autoMaxCanvas', 'steps', 'invokedSteps',
    'candidates', 'contextTokens', 'enabledLanguages', 'seed', 'minConfidence', 'minConfidenceInLine',
    'minConfidenceInvoked', 'engine', 'remote.url',
    'remote.kind', 'remote.model', 'remote.family', 'remote.tokenizer', 'remote.apiKeyEnv', 'remote.timeoutMs']);
  const settings = serverSettings(defaultsReader({ steps: 4 }));
  assert.equal(settings.steps, 4);
  assert.equal(settings.device, 'auto');
  assert.equal(settings.engine, 'local');
  assert.ok(!('client' in settings) && !('client.serverCommand' in settings));
});

test('the remote table is sent nested, as the server reads it', () => {
  const settings = serverSettings(defaultsReader({ engine: 'remote', 'remote.url': 'http://gpu-box:8000',
    'remote.family': 'qwen', 'remote.apiKeyEnv': 'TEAM_KEY' }));
  assert.equal(settings.engine, 'remote');
  assert.deepEqual(settings.remote, { url: 'http://gpu-box:8000', kind: 'openai', model: '', family: 'qwen',
    tokenizer: '', apiKeyEnv: 'TEAM_KEY', timeoutMs: 5000 });
  assert.ok(!('remote.url' in settings));
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
