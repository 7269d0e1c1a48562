import { describe, expect, it } from 'vitest';
import { ConfigError, configurationReference, describeOptions, envOf, flagOf, parseAddress, parseCommandLine, PORT_OFF } from '../../src/config.js';

describe('configuration', () => {
  it('derives flag and environment names from one declaration', () => {
    expect(flagOf('lookupPort')).toBe('--lookup-port');
    expect(envOf('lookupPort')).toBe('ATDIR_LOOKUP_PORT');
    expect(envOf('cacheNegativeTtl')).toBe('ATDIR_CACHE_NEGATIVE_TTL');
  });

  it('has the documented defaults', () => {
    const { config } = parseCommandLine('serve', [], {});
    expect(config).toMatchObject({ lookupHost: '::', lookupPort: 64, dataDir: './.atdirectory', workers: 1, migrate: true, databaseUrl: '' });
    expect(config.missDelay).toBe(3000);
    expect(config.missWindow).toBe(60_000);
  });

  it('takes flags over ATDIR_* variables over defaults', () => {
    const env = { ATDIR_LOOKUP_PORT: '6464', ATDIR_WORKERS: '2' };
    const { config } = parseCommandLine('serve', ['--lookup-port=7000'], env);
    expect(config.lookupPort).toBe(7000);
    expect(config.workers).toBe(2);
  });

  it('reads DATABASE_URL when ATDIR_DATABASE_URL is unset, and prefers ATDIR_DATABASE_URL', () => {
    expect(parseCommandLine('migrate', [], { DATABASE_URL: 'postgres://a/b' }).config.databaseUrl).toBe('postgres://a/b');
    expect(parseCommandLine('migrate', [], { DATABASE_URL: 'postgres://a/b', ATDIR_DATABASE_URL: 'postgres://c/d' }).config.databaseUrl).toBe(
      'postgres://c/d',
    );
  });

  it('parses durations with units and booleans with --no-', () => {
    const { config } = parseCommandLine('serve', ['--miss-delay', '1.5s', '--cache-ttl', '2h', '--no-migrate'], {});
    expect(config.missDelay).toBe(1500);
    expect(config.cacheTtl).toBe(7_200_000);
    expect(config.migrate).toBe(false);
    expect(parseCommandLine('serve', [], { ATDIR_MIGRATE: 'false' }).config.migrate).toBe(false);
  });

  it('collects positionals', () => {
    expect(parseCommandLine('lookup', ['@alice', '--root', 'localhost:6464'], {}).positionals).toEqual(['@alice']);
  });

  const invalid: Array<[string, string[], Record<string, string>, string]> = [
    ['an unknown flag', ['--lookup-prot', '1'], {}, 'unknown option --lookup-prot for `atdirectory serve` (see --help)'],
    ['a flag of another command', ['--root', 'x:1'], {}, 'unknown option --root for `atdirectory serve` (see --help)'],
    ['a port out of range', ['--lookup-port', '70000'], {}, 'invalid --lookup-port: expected an integer from 0 to 65535, got "70000"'],
    ['a non-numeric port', ['--lookup-port', 'abc'], {}, 'invalid --lookup-port: expected an integer from 0 to 65535, got "abc"'],
    ['a bad environment value', [], { ATDIR_WORKERS: '0' }, 'invalid ATDIR_WORKERS: expected an integer from 1 to 256, got "0"'],
    ['a duration without unit', ['--miss-delay', '3'], {}, 'invalid --miss-delay: expected a duration such as 500ms, 3s, 10m, 1h or 7d, got "3"'],
    ['a line limit under the reference', ['--max-line-length', '100'], {}, 'invalid --max-line-length: expected an integer from 255 to 65535, got "100"'],
    ['a missing value', ['--data-dir'], {}, 'option --data-dir needs a value'],
    ['a certificate without key', ['--tls-cert', 'c.pem'], {}, '--tls-cert and --tls-key go together: give both or neither'],
    ['a bad log level', ['--log-level', 'loud'], {}, 'invalid --log-level: expected fatal, error, warn, info, debug or trace, got "loud"'],
    ['a bad boolean', [], { ATDIR_MIGRATE: 'perhaps' }, 'invalid ATDIR_MIGRATE: expected true or false, got "perhaps"'],
    ['throttling that closes before it delays', ['--miss-delay-from', '3', '--miss-close-at', '3'], {}, '--miss-delay-from must be below --miss-close-at (or set --miss-close-at 0)'],
    ['a short flag', ['-p', '64'], {}, 'unknown option -p'],
  ];
  it.each(invalid)('refuses %s, naming the setting', (_name, argv, env, message) => {
    expect(() => parseCommandLine('serve', argv, env)).toThrow(new ConfigError(message));
  });

  it('refuses a malformed --root and contradictory trust options', () => {
    expect(() => parseCommandLine('lookup', ['--root', 'nohost'], {})).toThrow('invalid --root: expected host:port with a port from 1 to 65535, got "nohost"');
    expect(() => parseCommandLine('lookup', ['--ca', 'ca.pem', '--insecure'], {})).toThrow('--ca and --insecure exclude each other');
  });

  it('splits addresses, IPv6 in brackets', () => {
    expect(parseAddress('root.atsign.org:64')).toEqual({ host: 'root.atsign.org', port: 64 });
    expect(parseAddress('[::1]:6464')).toEqual({ host: '::1', port: 6464 });
    expect(parseAddress('host:0')).toBeUndefined();
  });

  const KEY = Buffer.alloc(32, 7).toString('base64');
  const KEY2 = Buffer.alloc(32, 8).toString('base64');

  it('accumulates repeated list flags, and reads lists from the environment comma-separated', () => {
    const fromFlags = parseCommandLine('serve', ['--upstream', 'a.example:64', '--upstream=[::1]:6464'], { ATDIR_UPSTREAM: 'ignored.example:64' });
    expect(fromFlags.config.upstream).toEqual(['a.example:64', '[::1]:6464']);
    expect(parseCommandLine('serve', [], { ATDIR_UPSTREAM: 'a.example:64, b.example:64' }).config.upstream).toEqual(['a.example:64', 'b.example:64']);
    expect(parseCommandLine('serve', [], {}).config.upstream).toEqual([]);
    const mirrored = parseCommandLine('serve', ['--mirror', 'https://central:8064', '--mirror-key', KEY], { ATDIR_MIRROR_TOKEN: 'atd_a_b' });
    expect(mirrored.config).toMatchObject({ mirror: ['https://central:8064'], mirrorKey: [KEY], mirrorToken: ['atd_a_b'] });
  });

  it('takes --https-port as a port or off, off by default', () => {
    expect(parseCommandLine('serve', [], {}).config.httpsPort).toBe(PORT_OFF);
    expect(parseCommandLine('serve', ['--https-port', '0'], {}).config.httpsPort).toBe(0);
    expect(parseCommandLine('serve', [], { ATDIR_HTTPS_PORT: '8443' }).config.httpsPort).toBe(8443);
    expect(parseCommandLine('serve', ['--https-port', 'off'], { ATDIR_HTTPS_PORT: '8443' }).config.httpsPort).toBe(PORT_OFF);
  });

  const invalidFederation: Array<[string, string[], Record<string, string>, string]> = [
    ['a malformed upstream', ['--upstream', 'root.atsign.org'], {}, 'invalid --upstream: expected host:port with a port from 1 to 65535, got "root.atsign.org"'],
    ['an empty upstream in the list', [], { ATDIR_UPSTREAM: 'a.example:64,' }, 'invalid ATDIR_UPSTREAM: expected a value, got ""'],
    ['an upstream CA with verification off', ['--upstream-ca', 'ca.pem', '--upstream-insecure'], {}, '--upstream-ca and --upstream-insecure exclude each other'],
    ['a mirror that is not a URL', ['--mirror', 'central:8064'], {}, 'invalid --mirror: expected an http:// or https:// URL, got "central:8064"'],
    ['a mirror without its key', ['--mirror', 'https://c:8064', '--mirror-token', 't'], {}, '--mirror-key: expected one key per --mirror (1), got 0'],
    ['a mirror without its token', ['--mirror', 'https://c:8064', '--mirror-key', KEY], {}, '--mirror-token: expected one API key per --mirror (1), got 0'],
    ['a mirror key that is not a public key', ['--mirror', 'https://c:8064', '--mirror-key', 'abc', '--mirror-token', 't'], {}, 'invalid --mirror-key: expected a 32-byte Ed25519 public key in base64 (as GET /v1/identity publishes it), got "abc"'],
    ['a source given twice', ['--mirror', 'https://c:8064', '--mirror', 'https://c:8064', '--mirror-key', KEY, '--mirror-key', KEY2, '--mirror-token', 't', '--mirror-token', 't'], {}, '--mirror https://c:8064 is given twice'],
    ['two sources with one key', ['--mirror', 'https://a:8064', '--mirror', 'https://b:8064', '--mirror-key', KEY, '--mirror-key', KEY, '--mirror-token', 't', '--mirror-token', 't'], {}, `--mirror-key ${KEY} is given for two sources; give each source once`],
    ['an HTTPS port out of range', ['--https-port', '70000'], {}, 'invalid --https-port: expected a port from 0 to 65535, or off, got "70000"'],
  ];
  it.each(invalidFederation)('refuses %s, naming the setting', (_name, argv, env, message) => {
    expect(() => parseCommandLine('serve', argv, env)).toThrow(new ConfigError(message));
  });

  it('documents every option of a command with its variable and default', () => {
    const help = describeOptions('serve');
    expect(help).toContain('--lookup-port  [ATDIR_LOOKUP_PORT] (default 64)');
    expect(help).toContain('--database-url  [ATDIR_DATABASE_URL, DATABASE_URL]');
    expect(help).toContain('--miss-window  [ATDIR_MISS_WINDOW] (default 1m)');
    expect(help).toContain('--no-migrate');
    expect(help).toContain('--https-port  [ATDIR_HTTPS_PORT] (default off)');
    expect(help).toContain('--upstream  [ATDIR_UPSTREAM] (repeatable; comma-separated in the variable)');
  });
});

describe('docs/configuration.md', () => {
  it('matches the declarations', async () => {
    const { readFile, writeFile } = await import('node:fs/promises');
    const path = new URL('../../docs/configuration.md', import.meta.url);
    const expected = configurationReference();
    if (process.env.UPDATE_DOCS) await writeFile(path, expected);
    expect(await readFile(path, 'utf8').catch(() => ''), 'regenerate with UPDATE_DOCS=1 npx vitest run test/unit/config.test.ts').toBe(expected);
  });
});
