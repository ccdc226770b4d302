// `dgLsp.*` is declared once, in package.json's contributes.configuration; the keys sent to the
// server are the ones declared there, less the client's own `dgLsp.client.*`.
import * as path from 'path';

// Read at run time from out/src/: the extension's own package.json, not a compiled copy.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const packageJson = require(path.join(__dirname, '..', '..', 'package.json'));

export const SECTION = 'dgLsp';
const CLIENT_PREFIX = `${SECTION}.client.`;

const declared = packageJson.contributes.configuration.properties as Record<string, { default: unknown }>;

/** Names of the server's settings, without the `dgLsp.` prefix; a nested table's are dotted (`remote.url`). */
export const SERVER_KEYS: string[] = Object.keys(declared)
  .filter((key) => !key.startsWith(CLIENT_PREFIX))
  .map((key) => key.slice(SECTION.length + 1));

export interface ConfigReader {
  get<T>(key: string, defaultValue?: T): T | undefined;
}

/** The `dgLsp` table for initializationOptions and didChangeConfiguration; dotted names become
 * nested tables (`remote.url` -> `{remote: {url}}`), as the server reads them. */
export function serverSettings(config: ConfigReader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const path = key.split('.');
    let table = out;
    for (const part of path.slice(0, -1)) {
      table = (table[part] ??= {}) as Record<string, unknown>;
    }
    table[path[path.length - 1]] = config.get(key);
  }
  return out;
}

/** A reader over package.json's defaults with overrides: what VS Code would hand us unconfigured. */
export function defaultsReader(overrides: Record<string, unknown> = {}): ConfigReader {
  return {
    get<T>(key: string): T | undefined {
      const value = key in overrides ? overrides[key] : declared[`${SECTION}.${key}`]?.default;
      return value as T | undefined;
    },
  };
}

/** How to start the server: `dgLsp.client.serverCommand`, as a command and its arguments. */
export function serverCommand(config: ConfigReader): { command: string; args: string[] } {
  const argv = config.get<string[]>('client.serverCommand') ?? ['dg-lsp', 'serve'];
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    throw new Error('dgLsp.client.serverCommand must be a non-empty list of strings');
  }
  return { command: argv[0], args: argv.slice(1) };
}

/** Documents the client hands to the server: the enabled languages, `*` meaning all. */
export function documentSelector(config: ConfigReader): { scheme: string; language?: string }[] {
  const languages = config.get<string[]>('enabledLanguages') ?? [];
  const schemes = ['file', 'untitled'];
  if (languages.includes('*')) {
    return schemes.map((scheme) => ({ scheme }));
  }
  return languages.flatMap((language) => schemes.map((scheme) => ({ scheme, language })));
}
