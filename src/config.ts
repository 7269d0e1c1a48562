/**
 * Every setting atdirectory has, declared once. The command-line flag (`--lookup-port`), the
 * environment variable (`ATDIR_LOOKUP_PORT`), the help text and the validation are all derived from
 * the declaration below, so they cannot drift apart. Precedence: flag, then environment, then default.
 */

export type CommandName = 'serve' | 'migrate' | 'lookup' | 'keys' | 'import';

type Kind =
  | { type: 'string' }
  | { type: 'path' }
  | { type: 'boolean' }
  | { type: 'integer'; min: number; max: number }
  | { type: 'duration'; min?: number }
  | { type: 'address' }
  /** A port, or `off` (the default) for a listener that is not started. */
  | { type: 'optionalPort' }
  /** Repeatable flag; the environment variable takes a comma-separated list. */
  | { type: 'list'; item: 'address' | 'url' | 'string' };

interface Setting<T> {
  kind: Kind;
  default: T;
  /** One sentence for `--help` and docs/configuration.md: what it does, and its cost or risk. */
  doc: string;
  /** The commands that accept the setting. */
  commands: readonly CommandName[];
  /** Extra environment variables read when `ATDIR_*` is unset, e.g. the conventional DATABASE_URL. */
  envAliases?: readonly string[];
}

const string = { type: 'string' } as const;
const path = { type: 'path' } as const;
const boolean = { type: 'boolean' } as const;
const port = { type: 'integer', min: 0, max: 65535 } as const;
const count = (min: number, max: number) => ({ type: 'integer', min, max }) as const;
const duration = (min = 0) => ({ type: 'duration', min }) as const;
const list = (item: 'address' | 'url' | 'string') => ({ type: 'list', item }) as const;
const NONE: readonly string[] = [];
/** The value of an optionalPort setting that is off. */
export const PORT_OFF = -1;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const SERVE = ['serve'] as const;
const DATABASE = ['serve', 'migrate', 'keys', 'import'] as const;
const KIB = 1024;
const MIB = 1024 * KIB;
const LOOKUP = ['lookup'] as const;

export const settings = {
  lookupHost: {
    kind: string, default: '::', commands: SERVE,
    doc: 'Address the lookup server binds; `::` accepts IPv4 and IPv6 (falls back to 0.0.0.0 where IPv6 is unavailable).',
  },
  lookupPort: {
    kind: port, default: 64, commands: SERVE,
    doc: 'TLS port of the lookup protocol; 0 picks any free port. Ports below 1024 need root or cap_net_bind_service.',
  },
  databaseUrl: {
    kind: string, default: '', commands: DATABASE, envAliases: ['DATABASE_URL'],
    doc: 'PostgreSQL connection string; when empty, an embedded PostgreSQL is started under --data-dir.',
  },
  dataDir: {
    kind: path, default: './.atdirectory', commands: DATABASE,
    doc: 'Directory for the embedded PostgreSQL, the generated development certificate and the generated feed signing key.',
  },
  migrate: {
    kind: boolean, default: true, commands: SERVE,
    doc: 'Apply pending migrations at start; turn off (--no-migrate) when migrations run as a separate job.',
  },
  tlsCert: {
    kind: path, default: '', commands: SERVE,
    doc: 'PEM certificate chain for the lookup port; when empty, a self-signed ECDSA P-256 certificate is generated under --data-dir.',
  },
  tlsKey: {
    kind: path, default: '', commands: SERVE,
    doc: 'PEM private key matching --tls-cert.',
  },
  tlsTicketKeys: {
    kind: path, default: '', commands: SERVE,
    doc: 'File with the 48-byte TLS session-ticket keys (raw, base64 or hex) shared by every process and pod serving this name, so sessions resume wherever a client lands; re-read when it changes. Without it, one process group shares random keys.',
  },
  tlsReloadInterval: {
    kind: duration(100), default: 2 * SECOND, commands: SERVE,
    doc: 'How often the certificate, key and ticket-key files are checked for changes; a changed valid pair is served to new handshakes without dropping connections.',
  },
  workers: {
    kind: count(1, 256), default: 1, commands: SERVE,
    doc: 'Lookup worker processes (node:cluster); each has its own cache and change listener.',
  },
  logLevel: {
    kind: string, default: 'info', commands: ['serve', 'migrate', 'keys', 'import'],
    doc: 'Log level: fatal, error, warn, info, debug or trace. Lookups are never logged above debug.',
  },
  cacheMaxEntries: {
    kind: count(1, 100_000_000), default: 1_000_000, commands: SERVE,
    doc: 'Capacity of the positive cache (atsigns that have a record); least recently used entries are evicted. About 170 bytes of heap each (docs/benchmarks.md, Memory).',
  },
  cacheNegativeMaxEntries: {
    kind: count(1, 100_000_000), default: 100_000, commands: SERVE,
    doc: 'Capacity of the negative cache (atsigns with no record), kept apart so that enumeration cannot evict real answers.',
  },
  cacheTtl: {
    kind: duration(SECOND), default: 10 * MINUTE, commands: SERVE,
    doc: 'Age after which a positive entry is refreshed from the database. A backstop only: changes arrive by notification within milliseconds.',
  },
  cacheNegativeTtl: {
    kind: duration(0), default: 30 * SECOND, commands: SERVE,
    doc: 'Age after which a negative entry is refreshed from the database.',
  },
  cacheMaxStale: {
    kind: duration(0), default: DAY, commands: SERVE,
    doc: 'How long past its TTL an entry may still be answered while its refresh runs or the database is unreachable.',
  },
  missDelayFrom: {
    kind: count(0, 1000), default: 2, commands: SERVE,
    doc: 'Enumeration throttling: the Nth miss within --miss-window on one connection, and every later one, is answered after --miss-delay (0 = never delay).',
  },
  missDelay: {
    kind: duration(0), default: 3 * SECOND, commands: SERVE,
    doc: 'Delay before answering a throttled miss (the reference root server uses 3 s).',
  },
  missCloseAt: {
    kind: count(0, 1000), default: 3, commands: SERVE,
    doc: 'Enumeration throttling: the Nth miss within --miss-window closes the connection without an answer (0 = never close).',
  },
  missWindow: {
    kind: duration(SECOND), default: MINUTE, commands: SERVE,
    doc: 'Sliding window in which misses are counted; older misses are forgotten, so long-lived SDK connections are not closed for rare misses.',
  },
  maxLineLength: {
    kind: count(255, 65_535), default: 255, commands: SERVE,
    doc: 'Longest request line, in UTF-16 code units as the reference counts them; a longer line closes the connection with no bytes. Never below 255.',
  },
  handshakeTimeout: {
    kind: duration(100), default: 5 * SECOND, commands: SERVE,
    doc: 'Time allowed for the TLS handshake before the connection is dropped.',
  },
  idleTimeout: {
    kind: duration(SECOND), default: 10 * MINUTE, commands: SERVE,
    doc: 'Time a connection may sit without traffic. Java, Python and Go SDKs keep one connection for days and reconnect when it is closed.',
  },
  requestTimeout: {
    kind: duration(100), default: 10 * SECOND, commands: SERVE,
    doc: 'Time from the first byte of a request to its newline; a client that trickles bytes slower is dropped.',
  },
  writeTimeout: {
    kind: duration(100), default: 30 * SECOND, commands: SERVE,
    doc: 'Time a client may leave its answers unread (our send buffer full) before it is dropped. Reading stops meanwhile, so memory per connection stays bounded.',
  },
  maxConnections: {
    kind: count(0, 10_000_000), default: 20_000, commands: SERVE,
    doc: 'Open lookup connections per process (0 = no limit). Over it, new connections are reset at accept, before any TLS work.',
  },
  maxConnectionsPerClient: {
    kind: count(0, 10_000_000), default: 1000, commands: SERVE,
    doc: 'Open lookup connections per client address (IPv4 /32, IPv6 --client-ipv6-prefix) per process (0 = no limit). Generous by default: many atServers may share one NAT address.',
  },
  clientRate: {
    kind: count(0, 10_000_000), default: 200, commands: SERVE,
    doc: 'New lookup connections per second per client address, a token bucket refilled continuously (0 = no limit). atServers open one connection per lookup.',
  },
  clientBurst: {
    kind: count(1, 10_000_000), default: 1000, commands: SERVE,
    doc: 'New connections a client address may open at once before --client-rate applies.',
  },
  clientIpv6Prefix: {
    kind: count(1, 128), default: 64, commands: SERVE,
    doc: 'IPv6 clients are counted per prefix of this length (a host usually holds a whole /64).',
  },
  overloadDelay: {
    kind: duration(0), default: 500, commands: SERVE,
    doc: 'When the event loop falls behind by more than this twice in a row (sampled every 50 ms), new connections are shed (reset at accept) and established ones kept serving, until it catches up (0 = never shed).',
  },
  drainTimeout: {
    kind: duration(0), default: 10 * SECOND, commands: SERVE,
    doc: 'On SIGTERM/SIGINT: how long in-flight requests may take before the remaining connections are cut.',
  },
  dbPoolSize: {
    kind: count(1, 1000), default: 10, commands: SERVE,
    doc: 'Connections in each process\'s query pool (cache misses and refreshes). The change listener has one more.',
  },
  dbStatementTimeout: {
    kind: duration(10), default: 2 * SECOND, commands: SERVE,
    doc: 'Longest a lookup query may run; a slower database answers `null` for uncached atsigns rather than holding clients.',
  },
  dbConnectTimeout: {
    kind: duration(10), default: 3 * SECOND, commands: DATABASE,
    doc: 'Longest wait for a new database connection.',
  },
  changeLogRetention: {
    kind: duration(MINUTE), default: 7 * DAY, commands: SERVE,
    doc: 'How long the change log keeps entries. A process disconnected from the database for longer than this clears its cache on reconnecting.',
  },
  listenerHeartbeat: {
    kind: duration(100), default: 10 * SECOND, commands: SERVE,
    doc: 'Interval of the change listener\'s liveness query, which also detects a silently dropped connection.',
  },
  ops: {
    kind: boolean, default: true, commands: SERVE,
    doc: 'Serve /metrics, /healthz and /readyz (--no-ops to turn them off).',
  },
  opsHost: {
    kind: string, default: '0.0.0.0', commands: SERVE,
    doc: 'Address of the ops endpoint (no authentication; it exposes metrics and health only).',
  },
  opsPort: {
    kind: port, default: 9464, commands: SERVE,
    doc: 'HTTP port of the ops endpoint; 0 picks any free port.',
  },
  admin: {
    kind: boolean, default: true, commands: SERVE,
    doc: 'Serve the admin REST API (--no-admin for lookup-only processes).',
  },
  adminHost: {
    kind: string, default: '127.0.0.1', commands: SERVE,
    doc: 'Address of the admin API. Keep it private or put TLS in front: keys travel in its requests.',
  },
  adminPort: {
    kind: port, default: 8064, commands: SERVE,
    doc: 'HTTP port of the admin API; 0 picks any free port.',
  },
  adminRateLimit: {
    kind: count(1, 1_000_000), default: 600, commands: SERVE,
    doc: 'Requests per minute allowed per API key; more get 429 with Retry-After.',
  },
  adminBodyLimit: {
    kind: count(KIB, 100 * MIB), default: 64 * KIB, commands: SERVE,
    doc: 'Largest JSON request body in bytes (imports have their own limit).',
  },
  adminImportLimit: {
    kind: count(KIB, 1024 * 1024 * MIB), default: 1024 * MIB, commands: SERVE,
    doc: 'Largest import body in bytes; imports are streamed, so this bounds time, not memory.',
  },
  adminVerifyCa: {
    kind: path, default: '', commands: SERVE,
    doc: 'PEM file of extra certificate authorities trusted by ?verify=true (public roots otherwise).',
  },
  adminVerifyTimeout: {
    kind: duration(100), default: 5 * SECOND, commands: SERVE,
    doc: 'How long ?verify=true waits for the atServer\'s TLS handshake.',
  },
  httpsPort: {
    kind: { type: 'optionalPort' }, default: PORT_OFF, commands: SERVE,
    doc: 'HTTPS lookups (GET /alice answers host:port) on this port, with the lookup port\'s certificate, cache and limits; `off` by default, 0 picks any free port.',
  },
  httpsHost: {
    kind: string, default: '::', commands: SERVE,
    doc: 'Address the HTTPS lookup server binds when --https-port is set.',
  },
  upstream: {
    kind: list('address'), default: NONE, commands: SERVE,
    doc: 'Root directory (host:port) asked for atsigns with no local record; repeat for failover, tried in order. Local records, suspensions included, always win.',
  },
  upstreamCa: {
    kind: path, default: '', commands: SERVE,
    doc: 'PEM file of certificate authorities trusted for --upstream instead of the public roots.',
  },
  upstreamInsecure: {
    kind: boolean, default: false, commands: SERVE,
    doc: 'Skip certificate verification of --upstream (testing only; logged as a warning at start).',
  },
  upstreamConnections: {
    kind: count(1, 64), default: 2, commands: SERVE,
    doc: 'Kept-open TLS connections per upstream and lookup process, so a forwarded lookup costs no handshake.',
  },
  upstreamTimeout: {
    kind: duration(100), default: 2 * SECOND, commands: SERVE,
    doc: 'Longest wait for an upstream answer before trying the next upstream; the client gets `null` well inside the SDKs\' timeouts.',
  },
  upstreamMaxInflight: {
    kind: count(1, 1_000_000), default: 256, commands: SERVE,
    doc: 'Upstream queries in flight per lookup process; beyond it a lookup that would need one answers `null` at once.',
  },
  upstreamCacheMaxEntries: {
    kind: count(1, 100_000_000), default: 100_000, commands: SERVE,
    doc: 'Capacity of the cache of upstream answers, positive and negative together.',
  },
  upstreamCacheTtl: {
    kind: duration(SECOND), default: 5 * MINUTE, commands: SERVE,
    doc: 'Age after which an upstream answer is asked again; while the upstream is unreachable it is served for --cache-max-stale more.',
  },
  upstreamCacheNegativeTtl: {
    kind: duration(0), default: 30 * SECOND, commands: SERVE,
    doc: 'Age after which an upstream `null` is asked again.',
  },
  signingKey: {
    kind: path, default: '', commands: SERVE,
    doc: 'PEM Ed25519 private key that signs the change feed and snapshots; when empty, one is generated under --data-dir and kept.',
  },
  mirror: {
    kind: list('url'), default: NONE, commands: SERVE,
    doc: 'Admin API URL of a directory to mirror (its snapshot, then its change feed); repeat for several sources, the first listed winning a shared atsign. A mirror takes no registrar writes.',
  },
  mirrorKey: {
    kind: list('string'), default: NONE, commands: SERVE,
    doc: 'Public Ed25519 key (base64, as GET /v1/identity publishes it) of each --mirror, in the same order; an entry that fails verification is refused.',
  },
  mirrorToken: {
    kind: list('string'), default: NONE, commands: SERVE,
    doc: 'API key (scope read) for each --mirror, in the same order. Prefer the environment variable: flags show in process listings.',
  },
  mirrorCa: {
    kind: path, default: '', commands: SERVE,
    doc: 'PEM file of certificate authorities trusted for https:// --mirror sources instead of the public roots.',
  },
  mirrorRetry: {
    kind: duration(100), default: 30 * SECOND, commands: SERVE,
    doc: 'Longest pause between attempts to reach an unreachable mirror source (backoff starts at 250ms); lookups keep being answered meanwhile.',
  },
  registrar: {
    kind: string, default: '', commands: ['keys', 'import'],
    doc: 'keys create: the registrar the key acts for. import: the owner of atsigns the import creates (default: none, so only admin keys manage them).',
  },
  scope: {
    kind: string, default: '', commands: ['keys'],
    doc: 'keys create: admin (everything), registrar (its own atsigns) or read (GET only).',
  },
  atomic: {
    kind: boolean, default: false, commands: ['import'],
    doc: 'All or nothing: any invalid line refuses the whole import.',
  },
  root: {
    kind: { type: 'address' }, default: 'root.atsign.org:64', commands: LOOKUP,
    doc: 'The atDirectory to ask, as host:port.',
  },
  ca: {
    kind: path, default: '', commands: LOOKUP,
    doc: 'PEM file of the certificate authorities to trust instead of the public roots (e.g. the generated development certificate).',
  },
  insecure: {
    kind: boolean, default: false, commands: LOOKUP,
    doc: 'Skip certificate verification (testing only).',
  },
  timeout: {
    kind: duration(10), default: 10 * SECOND, commands: LOOKUP,
    doc: 'Give up on the lookup after this long.',
  },
} satisfies Record<string, Setting<string | number | boolean | readonly string[]>>;

type Settings = typeof settings;
export type SettingName = keyof Settings;
export type Config = { -readonly [K in SettingName]: Settings[K]['default'] };
type Value = Config[SettingName];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function flagOf(name: string): string {
  return '--' + name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export function envOf(name: string): string {
  return 'ATDIR_' + name.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY };

/** Renders milliseconds the way a user would write them, for help and messages. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function parseValue(name: SettingName, raw: string, source: string): Exclude<Value, readonly string[]> {
  const setting: Setting<unknown> = settings[name];
  const fail = (expected: string): never => {
    throw new ConfigError(`invalid ${source}: expected ${expected}, got ${JSON.stringify(raw)}`);
  };
  const kind = setting.kind;
  switch (kind.type) {
    case 'string':
    case 'path':
      return raw;
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      return fail('true or false');
    case 'integer': {
      const value = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(value) || value < kind.min || value > kind.max) {
        return fail(`an integer from ${kind.min} to ${kind.max}`);
      }
      return value;
    }
    case 'duration': {
      const match = DURATION.exec(raw);
      const value = raw === '0' ? 0 : match ? Math.round(Number(match[1]) * UNIT_MS[match[2]!]!) : NaN;
      if (Number.isNaN(value)) return fail('a duration such as 500ms, 3s, 10m, 1h or 7d');
      if (value < (kind.min ?? 0)) return fail(`a duration of at least ${formatDuration(kind.min ?? 0)}`);
      return value;
    }
    case 'address':
      if (!parseAddress(raw)) return fail('host:port with a port from 1 to 65535');
      return raw;
    case 'optionalPort': {
      if (raw === 'off') return PORT_OFF;
      const value = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
      if (!(value <= 65535)) return fail('a port from 0 to 65535, or off');
      return value;
    }
    case 'list':
      return parseListItem(kind.item, raw, fail);
  }
}

function parseListItem(item: 'address' | 'url' | 'string', raw: string, fail: (expected: string) => never): string {
  if (raw === '') return fail('a value');
  if (item === 'address' && !parseAddress(raw)) return fail('host:port with a port from 1 to 65535');
  if (item === 'url') {
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return fail('an http:// or https:// URL');
  }
  return raw;
}

/** A list setting from its environment variable: comma-separated, each item validated. */
function parseList(name: SettingName, raw: string, source: string): string[] {
  return raw.split(',').map((item) => String(parseValue(name, item.trim(), source)));
}

/** Splits `host:port` (IPv6 hosts in brackets). */
export function parseAddress(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}

function namesFor(command: CommandName): SettingName[] {
  return (Object.keys(settings) as SettingName[]).filter((name) =>
    (settings[name].commands as readonly CommandName[]).includes(command),
  );
}

export interface ParsedCommandLine {
  config: Config;
  positionals: string[];
  help: boolean;
}

/**
 * Reads one command's settings from its arguments and the environment. Throws ConfigError naming
 * the flag or variable at fault; nothing is silently ignored.
 */
export function parseCommandLine(
  command: CommandName,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedCommandLine {
  const accepted = namesFor(command);
  const byFlag = new Map(accepted.map((name) => [flagOf(name), name]));
  const config = Object.fromEntries(
    Object.entries(settings).map(([name, setting]) => [name, setting.default]),
  ) as Config;
  const assign = (name: SettingName, value: Value) => {
    (config as Record<SettingName, unknown>)[name] = value;
  };
  const isList = (name: SettingName) => settings[name].kind.type === 'list';
  const listsFromFlags = new Set<SettingName>();

  for (const name of accepted) {
    const setting: Setting<unknown> = settings[name];
    for (const variable of [envOf(name), ...(setting.envAliases ?? [])]) {
      const raw = env[variable];
      if (raw !== undefined && raw !== '') {
        assign(name, isList(name) ? parseList(name, raw, variable) : parseValue(name, raw, variable));
        break;
      }
    }
  }

  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') throw new ConfigError(`unknown option ${arg}`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const negated = flag.startsWith('--no-') ? byFlag.get('--' + flag.slice(5)) : undefined;
    if (negated && settings[negated].kind.type === 'boolean' && inline === undefined) {
      assign(negated, false);
      continue;
    }
    const name = byFlag.get(flag);
    if (!name) throw new ConfigError(`unknown option ${flag} for \`atdirectory ${command}\` (see --help)`);
    if (settings[name].kind.type === 'boolean' && inline === undefined) {
      assign(name, true);
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw new ConfigError(`option ${flag} needs a value`);
    if (isList(name)) {
      // Repeated flags accumulate, and replace (rather than extend) the environment's list.
      const previous = listsFromFlags.has(name) ? (config[name] as readonly string[]) : [];
      listsFromFlags.add(name);
      assign(name, [...previous, String(parseValue(name, raw, flag))]);
      continue;
    }
    assign(name, parseValue(name, raw, flag));
  }

  checkCombinations(command, config);
  return { config, positionals, help };
}

function checkCombinations(command: CommandName, config: Config): void {
  if (command === 'serve' && Boolean(config.tlsCert) !== Boolean(config.tlsKey)) {
    throw new ConfigError('--tls-cert and --tls-key go together: give both or neither');
  }
  if (command === 'serve' && config.missCloseAt > 0 && config.missDelayFrom >= config.missCloseAt) {
    throw new ConfigError('--miss-delay-from must be below --miss-close-at (or set --miss-close-at 0)');
  }
  if (command === 'keys' && config.scope && !['admin', 'registrar', 'read'].includes(config.scope)) {
    throw new ConfigError(`invalid --scope: expected admin, registrar or read, got ${JSON.stringify(config.scope)}`);
  }
  if (command === 'lookup' && config.ca && config.insecure) {
    throw new ConfigError('--ca and --insecure exclude each other');
  }
  if (command === 'serve') checkFederation(config);
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(config.logLevel)) {
    throw new ConfigError(`invalid --log-level: expected fatal, error, warn, info, debug or trace, got ${JSON.stringify(config.logLevel)}`);
  }
}

function checkFederation(config: Config): void {
  if (config.upstreamCa && config.upstreamInsecure) {
    throw new ConfigError('--upstream-ca and --upstream-insecure exclude each other');
  }
  if (config.mirrorKey.length !== config.mirror.length) {
    throw new ConfigError(`--mirror-key: expected one key per --mirror (${config.mirror.length}), got ${config.mirrorKey.length}`);
  }
  if (config.mirrorToken.length !== config.mirror.length) {
    throw new ConfigError(`--mirror-token: expected one API key per --mirror (${config.mirror.length}), got ${config.mirrorToken.length}`);
  }
  const keyPattern = /^[A-Za-z0-9+/]{43}=$/;
  const badKey = config.mirrorKey.find((key) => !keyPattern.test(key));
  if (badKey !== undefined) {
    throw new ConfigError(`invalid --mirror-key: expected a 32-byte Ed25519 public key in base64 (as GET /v1/identity publishes it), got ${JSON.stringify(badKey)}`);
  }
  // A source is known by its URL and trusted by its key: one given twice would be followed twice.
  const repeatedUrl = config.mirror.find((url, index) => config.mirror.indexOf(url) !== index);
  if (repeatedUrl !== undefined) throw new ConfigError(`--mirror ${repeatedUrl} is given twice`);
  const repeatedKey = config.mirrorKey.find((key, index) => config.mirrorKey.indexOf(key) !== index);
  if (repeatedKey !== undefined) throw new ConfigError(`--mirror-key ${repeatedKey} is given for two sources; give each source once`);
}

function describeDefault(name: SettingName): string {
  const setting: Setting<unknown> = settings[name];
  const value = setting.default;
  if (value === '' || value === false || (Array.isArray(value) && value.length === 0)) return '';
  if (setting.kind.type === 'duration') return ` (default ${formatDuration(value as number)})`;
  if (setting.kind.type === 'optionalPort' && value === PORT_OFF) return ' (default off)';
  return ` (default ${String(value)})`;
}

/** The option list of a command's --help, generated from the declarations. */
export function describeOptions(command: CommandName): string {
  return namesFor(command)
    .map((name) => {
      const setting: Setting<unknown> = settings[name];
      const aliases = [envOf(name), ...(setting.envAliases ?? [])].join(', ');
      const flag = setting.kind.type === 'boolean' && setting.default === true ? `--no-${flagOf(name).slice(2)}` : flagOf(name);
      const repeat = setting.kind.type === 'list' ? ' (repeatable; comma-separated in the variable)' : '';
      return `  ${flag}  [${aliases}]${describeDefault(name)}${repeat}\n      ${setting.doc}`;
    })
    .join('\n');
}

function shownDefault(setting: Setting<unknown>): string {
  const value = setting.default;
  if (value === '' || (Array.isArray(value) && value.length === 0)) return '—';
  if (setting.kind.type === 'duration') return formatDuration(value as number);
  if (setting.kind.type === 'optionalPort' && value === PORT_OFF) return 'off';
  return String(value);
}

/** docs/configuration.md, generated from the declarations (a test keeps the file in step). */
export function configurationReference(): string {
  const commands: CommandName[] = ['serve', 'migrate', 'lookup', 'keys', 'import'];
  const sections = commands.map((command) => {
    const rows = namesFor(command).map((name) => {
      const setting: Setting<unknown> = settings[name];
      const variables = [envOf(name), ...(setting.envAliases ?? [])].map((variable) => `\`${variable}\``).join(', ');
      const value = setting.default;
      const shown = shownDefault(setting);
      return `| \`${flagOf(name)}\` | ${variables} | \`${shown}\` | ${setting.doc.replace(/\|/g, '\\|')} |`;
    });
    return [`## atdirectory ${command}`, '', '| flag | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
  });
  return [
    '# Configuration',
    '',
    '<!-- Generated from src/config.ts by `UPDATE_DOCS=1 npx vitest run test/unit/config.test.ts`; do not edit by hand. -->',
    '',
    'Every setting is a command-line flag and an environment variable; a flag wins over the variable,',
    'the variable over the default. Durations take a unit: `500ms`, `3s`, `10m`, `1h`, `7d`. Booleans',
    'accept `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); a boolean flag alone means true and',
    '`--no-<flag>` means false. An invalid value stops the command at start with a message naming the',
    'flag or variable.',
    '',
    ...sections.flatMap((section) => [section, '']),
  ].join('\n');
}
