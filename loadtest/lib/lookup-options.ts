import { availableParallelism } from 'node:os';
import { LOAD_MODES, type LoadMode, type LoadOptions } from './lookup-load.js';

/** The load flags shared by lookup.ts and compare.ts. */
export const LOAD_FLAGS = {
  host: { type: 'string', default: '127.0.0.1' },
  mode: { type: 'string', default: 'persistent' },
  connections: { type: 'string', default: '50' },
  duration: { type: 'string', default: '10' },
  processes: { type: 'string', default: String(Math.max(1, Math.floor(availableParallelism() / 2))) },
  keys: { type: 'string', default: 'alice' },
  'key-range': { type: 'string' },
  'miss-ratio': { type: 'string', default: '0' },
  'miss-set': { type: 'string', default: '10000' },
  rate: { type: 'string', default: '0' },
  json: { type: 'boolean', default: false },
} as const;

export const LOAD_USAGE = `[--mode persistent|connect|connect-resume] [--connections 50] [--duration 10] [--processes N]
  [--keys alice,bob | --key-range user:1000000] [--miss-ratio 0.1] [--miss-set 10000] [--rate LOOKUPS_PER_S] [--json]`;

const LOOPBACK = ['127.0.0.1', 'localhost', '::1'];

function positiveNumber(name: string, value: string | undefined, { integer = true, min = 1 } = {}): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number < min || (integer && !Number.isInteger(number))) throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, got ${value}`);
  return number;
}

/** Load options from parsed flags; `port` comes from the caller. Refuses anything but loopback. */
export function loadOptionsFrom(values: Record<string, string | boolean | undefined>, port: number): LoadOptions {
  const host = String(values.host);
  if (!LOOPBACK.includes(host)) throw new Error(`load goes to loopback only, not ${host}`);
  const mode = String(values.mode) as LoadMode;
  if (!LOAD_MODES.includes(mode)) throw new Error(`--mode must be one of ${LOAD_MODES.join(', ')}, got ${mode}`);
  const range = values['key-range'] === undefined ? undefined : /^(.*):(\d+)$/.exec(String(values['key-range']));
  if (values['key-range'] !== undefined && !range) throw new Error(`--key-range must be prefix:count, e.g. user:1000000`);
  const missRatio = Number(values['miss-ratio']);
  if (!(missRatio >= 0 && missRatio <= 1)) throw new Error(`--miss-ratio must be from 0 to 1, got ${values['miss-ratio']}`);
  return {
    host,
    port,
    mode,
    connections: positiveNumber('connections', values.connections as string),
    durationMs: positiveNumber('duration', values.duration as string, { integer: false, min: 0.1 }) * 1000,
    keys: String(values.keys).split(','),
    keyRange: range ? { prefix: range[1]!, count: Number(range[2]) } : undefined,
    missRatio,
    missSet: positiveNumber('miss-set', values['miss-set'] as string),
    rate: positiveNumber('rate', values.rate as string, { integer: false, min: 0 }),
  };
}
