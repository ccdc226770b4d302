import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { Position, Selection, recorded, reset } from './vscodeMock';
import { registerCommands } from '../src/commands';

const EDIT = { changes: { 'file:///w/a.py': [{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: 9 } }, newText: 'y = 2' }] } };

/** A language client that answers executeCommand with `reply` and records the requests. */
function fakeClient(reply: unknown) {
  const requests: { method: string; params: unknown }[] = [];
  return {
    requests,
    isRunning: () => true,
    sendRequest: async (method: string, params: unknown) => {
      requests.push({ method, params });
      return reply;
    },
    protocol2CodeConverter: { asWorkspaceEdit: async (edit: unknown) => ({ converted: edit }) },
  };
}

function editor(anchor: [number, number], active: [number, number]) {
  return {
    document: { uri: { toString: () => 'file:///w/a.py' } },
    selection: new Selection(new Position(...anchor), new Position(...active)),
  };
}

async function run(id: string, client: ReturnType<typeof fakeClient> | undefined) {
  registerCommands(() => client as never);
  await recorded.commands.get(id)!();
}

beforeEach(reset);

test('rewrite sends the selection and instruction, and applies the returned edit', async () => {
  const client = fakeClient(EDIT);
  recorded.activeTextEditor = editor([1, 0], [1, 9]);
  recorded.inputBox = 'use a constant';
  await run('dgLsp.rewriteSelection', client);
  assert.deepEqual(client.requests, [{
    method: 'workspace/executeCommand',
    params: { command: 'dg.rewriteSelection', arguments: [{
      uri: 'file:///w/a.py', range: { start: { line: 1, character: 0 }, end: { line: 1, character: 9 } }, instruction: 'use a constant' }] },
  }]);
  assert.deepEqual(recorded.applied, [{ converted: EDIT }]);
});

test('rewrite needs a selection, and Escape in the instruction box cancels it', async () => {
  const client = fakeClient(EDIT);
  recorded.activeTextEditor = editor([1, 4], [1, 4]);
  await run('dgLsp.rewriteSelection', client);
  assert.equal(client.requests.length, 0);
  assert.match(recorded.messages[0].text, /select the code/);
  recorded.activeTextEditor = editor([1, 0], [1, 9]);
  recorded.inputBox = undefined;
  await run('dgLsp.rewriteSelection', client);
  assert.equal(client.requests.length, 0);
});

test('docstring and test commands send the cursor position', async () => {
  for (const [id, command] of [['dgLsp.fillDocstring', 'dg.fillDocstring'], ['dgLsp.generateTest', 'dg.generateTest']]) {
    const client = fakeClient(EDIT);
    recorded.activeTextEditor = editor([0, 0], [3, 7]); // the cursor is the selection's active end
    await run(id, client);
    assert.deepEqual(client.requests[0].params,
      { command, arguments: [{ uri: 'file:///w/a.py', position: { line: 3, character: 7 } }] });
  }
  assert.equal(recorded.applied.length, 2);
});

test('a superseded command (null edit) applies nothing and says so; no server is a warning', async () => {
  recorded.activeTextEditor = editor([0, 0], [0, 0]);
  await run('dgLsp.fillDocstring', fakeClient(null));
  assert.deepEqual(recorded.applied, []);
  assert.match(recorded.messages.at(-1)!.text, /nothing to apply/);
  await run('dgLsp.generateTest', undefined);
  assert.match(recorded.messages.at(-1)!.text, /not running/);
});

test('a server error is shown, not thrown', async () => {
  const client = fakeClient(null);
  client.sendRequest = async () => { throw new Error('there is no function at the cursor'); };
  recorded.activeTextEditor = editor([0, 0], [0, 0]);
  await run('dgLsp.fillDocstring', client);
  assert.deepEqual(recorded.messages.at(-1), { kind: 'error', text: 'dg-lsp: there is no function at the cursor' });
});
