// The server's side of the contract, with no `vscode` import, so the jsonrpc test driver and the
// unit tests use exactly what the extension sends.

export const SERVER_COMMANDS = {
  rewrite: 'dg.rewriteSelection',
  docstring: 'dg.fillDocstring',
  test: 'dg.generateTest',
} as const;

export interface LspPosition { line: number; character: number }
export interface LspRange { start: LspPosition; end: LspPosition }

export function rewriteArguments(uri: string, range: LspRange, instruction?: string): unknown[] {
  const arg: Record<string, unknown> = { uri, range };
  if (instruction && instruction.trim()) {
    arg.instruction = instruction.trim();
  }
  return [arg];
}

export function positionArguments(uri: string, position: LspPosition): unknown[] {
  return [{ uri, position }];
}

/** The reply of the server's custom `dg/status` request. */
export interface DgStatus {
  version: string;
  state: 'idle' | 'loading' | 'ready' | 'failed' | 'unreachable'; // unreachable: the remote engine's server
  error: string;
  model: string;
  device: string;
  lastLatencyMs: number | null;
  requests: number;
  cancelled: number;
  superseded: number;
  cacheHits: number;
}

const ICONS: Record<DgStatus['state'], string> = {
  idle: '$(circle-outline)',
  loading: '$(loading~spin)',
  ready: '$(sparkle)',
  failed: '$(error)',
  unreachable: '$(cloud-offline)',
};

/** Status bar text: the model state, then the last completion's latency once there is one. */
export function statusText(status: DgStatus | undefined): string {
  if (!status) {
    return '$(debug-disconnect) dg: off';
  }
  const latency = status.state === 'ready' && status.lastLatencyMs !== null ? ` ${Math.round(status.lastLatencyMs)} ms` : '';
  return `${ICONS[status.state] ?? ''} dg: ${status.state}${latency}`;
}

export function statusTooltip(status: DgStatus | undefined): string {
  if (!status) {
    return 'dg-lsp: the server is not running';
  }
  const lines = [
    `dg-lsp ${status.version}: model ${status.state}${status.error ? ` (${status.error})` : ''}`,
    `model: ${status.model || '(none)'}${status.device ? ` on ${status.device}` : ''}`,
    `${status.requests} model requests, ${status.cancelled} cancelled, ${status.superseded} superseded, ${status.cacheHits} cache hits`,
  ];
  return lines.join('\n');
}
