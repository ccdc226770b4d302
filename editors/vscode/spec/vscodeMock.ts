// A stand-in for the `vscode` module (which only exists inside VS Code): the parts the extension
// touches, recording what it does. Import this before any module under src/.
import Module from 'module';

export class Position {
  constructor(readonly line: number, readonly character: number) {}
}

export class Range {
  constructor(readonly start: Position, readonly end: Position) {}
  get isEmpty(): boolean {
    return this.start.line === this.end.line && this.start.character === this.end.character;
  }
}

export class Selection extends Range {
  constructor(readonly anchor: Position, readonly active: Position) {
    super(anchor, active);
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export interface Recorded {
  messages: { kind: string; text: string }[];
  applied: unknown[];
  commands: Map<string, (...args: unknown[]) => unknown>;
  inputBox: string | undefined;
  activeTextEditor: unknown;
}

export const recorded: Recorded = { messages: [], applied: [], commands: new Map(), inputBox: undefined, activeTextEditor: undefined };

export function reset(): void {
  recorded.messages = [];
  recorded.applied = [];
  recorded.commands.clear();
  recorded.inputBox = undefined;
  recorded.activeTextEditor = undefined;
}

const message = (kind: string) => async (text: string) => {
  recorded.messages.push({ kind, text });
  return undefined;
};

export const vscode = {
  Position,
  Range,
  Selection,
  ThemeColor,
  StatusBarAlignment: { Left: 1, Right: 2 },
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  window: {
    get activeTextEditor() {
      return recorded.activeTextEditor;
    },
    createStatusBarItem: () => ({ text: '', tooltip: '', command: undefined, backgroundColor: undefined, show() {}, dispose() {} }),
    showInputBox: async () => recorded.inputBox,
    showInformationMessage: message('info'),
    showWarningMessage: message('warning'),
    showErrorMessage: message('error'),
    withProgress: async (_options: unknown, task: () => Promise<unknown>) => task(),
  },
  workspace: {
    applyEdit: async (edit: unknown) => {
      recorded.applied.push(edit);
      return true;
    },
  },
  commands: {
    registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => {
      recorded.commands.set(id, fn);
      return { dispose() {} };
    },
  },
};

// Resolve `require('vscode')` to the stand-in.
const moduleWithLoad = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = moduleWithLoad._load;
moduleWithLoad._load = function (this: unknown, request: string, ...rest: unknown[]) {
  return request === 'vscode' ? vscode : load.call(this, request, ...rest);
};
