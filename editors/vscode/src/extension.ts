// Entry point: start the server with `dgLsp.*`, show its inline completions (the language
// client's inline completion feature), the commands and the status bar item.
import * as vscode from 'vscode';
import { DidChangeConfigurationNotification, LanguageClient, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import { registerCommands } from './commands';
import type { DgStatus } from './protocol';
import { SECTION, documentSelector, serverCommand, serverSettings } from './settings';
import { StatusBar } from './statusBar';

let client: LanguageClient | undefined;

function createClient(statusBar: StatusBar): LanguageClient {
  const config = vscode.workspace.getConfiguration(SECTION);
  const { command, args } = serverCommand(config);
  const serverOptions: ServerOptions = { command, args };
  const clientOptions: LanguageClientOptions = {
    documentSelector: documentSelector(config),
    initializationOptions: { [SECTION]: serverSettings(config) },
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        const items = await next(document, position, context, token);
        statusBar.refreshLater(); // the last latency changed
        return items;
      },
    },
  };
  return new LanguageClient('dgLsp', 'dg-lsp', serverOptions, clientOptions);
}

async function start(statusBar: StatusBar): Promise<void> {
  client = createClient(statusBar);
  await client.start();
  await statusBar.refresh();
}

async function onConfigurationChange(event: vscode.ConfigurationChangeEvent, statusBar: StatusBar): Promise<void> {
  if (event.affectsConfiguration(`${SECTION}.client`) || event.affectsConfiguration(`${SECTION}.enabledLanguages`)) {
    await client?.stop(); // a new command or document selector needs a new client
    await start(statusBar);
  } else if (event.affectsConfiguration(SECTION) && client?.isRunning()) {
    const settings = { [SECTION]: serverSettings(vscode.workspace.getConfiguration(SECTION)) };
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings });
    await statusBar.refresh();
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const statusBar = new StatusBar({
    status: async () => (client?.isRunning() ? client.sendRequest<DgStatus>('dg/status') : undefined),
  });
  context.subscriptions.push(
    statusBar,
    ...registerCommands(() => client),
    vscode.commands.registerCommand('dgLsp.showStatus', async () => {
      const status = await statusBar.refresh();
      void vscode.window.showInformationMessage(statusBar.item.tooltip as string, { modal: !status });
    }),
    vscode.workspace.onDidChangeConfiguration((e) => onConfigurationChange(e, statusBar)),
  );
  await start(statusBar);
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
