// The status bar item: model state and last latency from the server's `dg/status`, refreshed
// after completions (debounced) and every few seconds while the model loads.
import * as vscode from 'vscode';
import { statusText, statusTooltip, type DgStatus } from './protocol';

export interface StatusSource {
  status(): Promise<DgStatus | undefined>;
}

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly source: StatusSource, private readonly pollMs = 2000) {
    this.item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.item.command = 'dgLsp.showStatus';
    this.show(undefined);
    this.item.show();
  }

  show(status: DgStatus | undefined): void {
    this.item.text = statusText(status);
    this.item.tooltip = statusTooltip(status);
    const background = { failed: 'statusBarItem.errorBackground', unreachable: 'statusBarItem.warningBackground' };
    const color = status ? background[status.state as keyof typeof background] : undefined;
    this.item.backgroundColor = color ? new vscode.ThemeColor(color) : undefined;
  }

  /** Ask the server now; keep polling while the model is loading. */
  async refresh(): Promise<DgStatus | undefined> {
    let status: DgStatus | undefined;
    try {
      status = await this.source.status();
    } catch {
      status = undefined; // a stopped or restarting server
    }
    this.show(status);
    // Poll while the model loads, and while a remote server is unreachable (completions resume on their own).
    if (status?.state === 'loading' || status?.state === 'idle' || status?.state === 'unreachable') {
      this.refreshLater(this.pollMs);
    }
    return status;
  }

  /** Coalesce refreshes: completions come at typing speed, the status bar need not. */
  refreshLater(delayMs = 300): void {
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.refresh();
      }, delayMs);
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.item.dispose();
  }
}
