// The editor commands: build the server command's argument from the editor, run it, apply the
// WorkspaceEdit it returns. The server does the work; it never writes files itself.
import * as vscode from 'vscode';
// Type-only imports: the language client is handed in, so tests run this module with a fake one.
import type { LanguageClient, WorkspaceEdit } from 'vscode-languageclient/node';
import { SERVER_COMMANDS, positionArguments, rewriteArguments, type LspPosition, type LspRange } from './protocol';

function lspPosition(p: vscode.Position): LspPosition {
  return { line: p.line, character: p.character }; // both count UTF-16 code units
}

function lspRange(r: vscode.Range): LspRange {
  return { start: lspPosition(r.start), end: lspPosition(r.end) };
}

/** Run a dg.* command on the server and apply its edit; returns whether an edit was applied. */
export async function runServerCommand(client: LanguageClient, command: string, args: unknown[], title: string): Promise<boolean> {
  const edit = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `dg-lsp: ${title}…`, cancellable: false },
    () => client.sendRequest<WorkspaceEdit | null>('workspace/executeCommand', { command, arguments: args }),
  );
  if (!edit) {
    vscode.window.showWarningMessage('dg-lsp: nothing to apply (the request was superseded)');
    return false;
  }
  return vscode.workspace.applyEdit(await client.protocol2CodeConverter.asWorkspaceEdit(edit));
}

async function rewrite(client: LanguageClient): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.selection.isEmpty) {
    vscode.window.showInformationMessage('dg-lsp: select the code to rewrite');
    return;
  }
  const instruction = await vscode.window.showInputBox({
    prompt: 'How should the selection change? (optional)',
    placeHolder: 'e.g. use a list comprehension',
  });
  if (instruction === undefined) {
    return; // Escape cancels; an empty instruction just re-noises the selection
  }
  const args = rewriteArguments(editor.document.uri.toString(), lspRange(editor.selection), instruction);
  await runServerCommand(client, SERVER_COMMANDS.rewrite, args, 'rewriting');
}

function atCursor(client: LanguageClient, command: string, title: string): () => Promise<void> {
  return async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return;
    }
    const args = positionArguments(editor.document.uri.toString(), lspPosition(editor.selection.active));
    await runServerCommand(client, command, args, title);
  };
}

/** Register the editor commands; `getClient` gives the running client, which restarts replace. */
export function registerCommands(getClient: () => LanguageClient | undefined): vscode.Disposable[] {
  const withClient = (run: (client: LanguageClient) => Promise<void>) => async () => {
    const client = getClient();
    if (!client || !client.isRunning()) {
      vscode.window.showWarningMessage('dg-lsp: the server is not running');
      return;
    }
    try {
      await run(client);
    } catch (err) {
      vscode.window.showErrorMessage(`dg-lsp: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return [
    vscode.commands.registerCommand('dgLsp.rewriteSelection', withClient(rewrite)),
    vscode.commands.registerCommand('dgLsp.fillDocstring',
      withClient((c) => atCursor(c, SERVER_COMMANDS.docstring, 'writing a docstring')())),
    vscode.commands.registerCommand('dgLsp.generateTest',
      withClient((c) => atCursor(c, SERVER_COMMANDS.test, 'writing a test')())),
  ];
}
