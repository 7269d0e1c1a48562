import { readFile } from 'node:fs/promises';
import { parseAddress, type Config } from '../config.js';
import { lookupAtsign } from '../lookup/client.js';

/**
 * `atdirectory lookup <atsign>`: prints `host:port` and exits 0, or says the atsign is not found
 * and exits 1. Connection failures exit 2.
 */
export async function lookupCommand(config: Config, atsign: string): Promise<number> {
  const root = parseAddress(config.root)!;
  const ca = config.ca ? await readFile(config.ca) : undefined;
  try {
    const answer = await lookupAtsign(atsign, { ...root, ca, insecure: config.insecure, timeoutMs: config.timeout });
    if (answer === null) {
      process.stderr.write(`${atsign}: not found\n`);
      return 1;
    }
    process.stdout.write(`${answer}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`atdirectory lookup: ${config.root}: ${(error as Error).message}\n`);
    return 2;
  }
}
