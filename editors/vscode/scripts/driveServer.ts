// Drives the real server with vscode-jsonrpc the way the extension does: initialize with the
// settings the extension would send (package.json defaults plus overrides), inline completion,
// a dg.* command and dg/status. Prints one JSON object for tests/editors/test_vscode.py.
//
//   node out/scripts/driveServer.js '<server argv as JSON>' '<settings overrides as JSON>'
import { spawn } from 'child_process';
import { pathToFileURL } from 'url';
import { StreamMessageReader, StreamMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import { SERVER_COMMANDS, rewriteArguments, statusText, type DgStatus } from '../src/protocol';
import { SECTION, defaultsReader, serverSettings } from '../src/settings';

const SOURCE = 'def add(a, b):\n    total = a + b\n    return total\n\n\nresult = \n';

async function waitFor<T>(what: string, timeoutMs: number, poll: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await poll();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main(): Promise<void> {
  const [argv, overrides] = [JSON.parse(process.argv[2]), JSON.parse(process.argv[3] ?? '{}')];
  const server = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const connection = createMessageConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
  const logs: { type: number; message: string }[] = [];
  const applyEdits: unknown[] = [];
  for (const method of ['window/logMessage', 'window/showMessage']) {
    connection.onNotification(method, (p: { type: number; message: string }) => { logs.push(p); });
  }
  connection.onNotification('$/progress', () => undefined);
  connection.onRequest('window/workDoneProgress/create', () => null);
  connection.onRequest('workspace/applyEdit', (p: unknown) => { applyEdits.push(p); return { applied: true }; });
  connection.listen();

  const initializationOptions = { [SECTION]: serverSettings(defaultsReader(overrides)) };
  const init = await connection.sendRequest<{ capabilities: Record<string, any> }>('initialize', {
    processId: process.pid, rootUri: null, initializationOptions,
    capabilities: { window: { workDoneProgress: true }, textDocument: { inlineCompletion: {} } },
  });
  await connection.sendNotification('initialized', {});
  await waitFor('the model to load', 90_000, async () => {
    const s = await connection.sendRequest<DgStatus>('dg/status');
    if (s.state === 'failed') throw new Error(s.error);
    return s.state === 'ready' ? s : undefined;
  });

  const uri = pathToFileURL('/work/sample.py').toString();
  await connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'python', version: 1, text: SOURCE } });
  const position = { line: 5, character: 9 }; // after "result = "
  const inline = await connection.sendRequest('textDocument/inlineCompletion',
    { textDocument: { uri }, position, context: { triggerKind: 2 } }); // Automatic, as typing triggers it
  const range = { start: { line: 1, character: 4 }, end: { line: 1, character: 17 } }; // "total = a + b"
  const rewrite = await connection.sendRequest('workspace/executeCommand',
    { command: SERVER_COMMANDS.rewrite, arguments: rewriteArguments(uri, range, 'make it shorter') });
  // Code actions carry "apply": true, so running one makes the server send workspace/applyEdit.
  const actions = await connection.sendRequest<{ title: string; command: { command: string; arguments: unknown[] } }[]>(
    'textDocument/codeAction', { textDocument: { uri }, range, context: { diagnostics: [] } });
  const action = actions.find((a) => a.command.command === SERVER_COMMANDS.rewrite)!;
  await connection.sendRequest('workspace/executeCommand', action.command);
  const status = await connection.sendRequest<DgStatus>('dg/status');

  await connection.sendRequest('shutdown');
  await connection.sendNotification('exit');
  const exitCode = await new Promise<number | null>((resolve) => server.on('exit', resolve));
  process.stdout.write(JSON.stringify({
    initializationOptions, capabilities: init.capabilities, uri, position, range, inline, rewrite, actions, applyEdits,
    status, statusText: statusText(status), logs, exitCode,
  }) + '\n');
  connection.dispose();
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
  process.exit(1);
});
