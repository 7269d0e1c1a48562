import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseCommandLine, type Config } from '../../src/config.js';
import { startLookupProcess, type LookupProcess } from '../../src/serve/lookup-process.js';
import { randomTicketKeys, readTicketKeys } from '../../src/tls/ticket-keys.js';
import { developmentCertificate } from '../../src/tls/certificate.js';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface TestLookup {
  port: number;
  config: Config;
  process: LookupProcess;
  /** Everything the process logged, parsed. */
  logs: LogLine[];
  stop(): Promise<void>;
}

/**
 * A lookup process in this test process, on a free loopback port, with a fresh development
 * certificate. `args` are `serve` flags; the environment is ignored so tests are repeatable.
 */
export async function startTestLookup(databaseUrl: string, args: string[] = []): Promise<TestLookup> {
  const { config } = parseCommandLine('serve', ['--lookup-host', '127.0.0.1', '--lookup-port', '0', '--log-level', 'debug', ...args], {});
  const dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
  const certificate = await developmentCertificate(dataDir);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const logger = pino({ level: config.logLevel }, sink);
  const ticketKeys = config.tlsTicketKeys ? await readTicketKeys(config.tlsTicketKeys) : randomTicketKeys();
  const lookup = await startLookupProcess(config, databaseUrl, certificate, ticketKeys, logger);
  return {
    port: lookup.address.port,
    config,
    process: lookup,
    logs,
    async stop() {
      await lookup.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` passes or the time is up; returns whether it passed. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
