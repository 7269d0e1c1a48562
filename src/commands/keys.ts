import { ConfigError, type Config } from '../config.js';
import { ApiKeyStore, type Scope } from '../store/api-keys.js';
import { withDatabase } from './with-database.js';

/**
 * `atdirectory keys create|list|revoke`, straight against the database: how the first admin key is
 * made, and how keys are managed without the API.
 */
export async function keysCommand(config: Config, positionals: string[]): Promise<number> {
  const [action, ...rest] = positionals;
  if (action === 'create') {
    if (!config.registrar) throw new ConfigError('keys create needs --registrar NAME');
    if (!config.scope) throw new ConfigError('keys create needs --scope admin|registrar|read');
  } else if (action === 'revoke') {
    if (rest.length !== 1) throw new ConfigError('keys revoke takes exactly one key id');
  } else if (action !== 'list') {
    throw new ConfigError('keys takes create, list or revoke');
  }
  if (action !== 'revoke' && rest.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(rest[0])}`);

  return withDatabase(config, 'atdirectory-keys', async (pool) => {
    const keys = new ApiKeyStore(pool);
    switch (action) {
      case 'create': {
        const { key, token } = await keys.create(config.registrar, config.scope as Scope);
        process.stdout.write(`${token}\n`);
        process.stderr.write(`created ${key.scope} key ${key.id} for registrar ${key.registrar}; the key above is shown only this once\n`);
        return 0;
      }
      case 'list': {
        const rows = (await keys.list()).map((key) =>
          [key.id, key.scope, key.registrar, key.createdAt, key.revokedAt ? `revoked ${key.revokedAt}` : 'active', key.lastUsedAt ?? 'never used'].join('\t'),
        );
        process.stdout.write(['id\tscope\tregistrar\tcreated\tstate\tlast used', ...rows].join('\n') + '\n');
        return 0;
      }
      default: {
        if (await keys.revoke(rest[0]!)) {
          process.stderr.write(`revoked key ${rest[0]}\n`);
          return 0;
        }
        process.stderr.write(`no key ${rest[0]}\n`);
        return 1;
      }
    }
  });
}
