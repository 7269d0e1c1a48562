import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { TestProject } from 'vitest/node';
import type { EmbeddedPostgres } from '../../src/store/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

/**
 * Tests run against a real PostgreSQL: DATABASE_URL when set (CI points it at the machine's
 * server), otherwise an embedded one started here for the run. Each test file then makes its own
 * database inside it (test/support/database.ts), so files run in parallel without sharing rows or
 * notifications.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const configured = process.env.DATABASE_URL;
  if (configured) {
    project.provide('databaseUrl', configured);
    return async () => undefined;
  }
  // /tmp, not a home directory: as root the embedded server runs as `postgres`, which must reach it.
  const directory = await mkdtemp(join(tmpdir(), 'atdirectory-test-pg-'));
  await chmod(directory, 0o755);
  let embedded: EmbeddedPostgres;
  try {
    const { startEmbeddedPostgres } = await import('../../src/store/embedded.js');
    embedded = await startEmbeddedPostgres({ directory: join(directory, 'cluster'), logger: pino({ level: 'warn' }) });
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  project.provide('databaseUrl', embedded.url);
  return async () => {
    await embedded.stop();
    await rm(directory, { recursive: true, force: true });
  };
}
