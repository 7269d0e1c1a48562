#!/usr/bin/env node
import { ConfigError, describeOptions, parseCommandLine, type CommandName } from './config.js';
import { importCommand } from './commands/import.js';
import { keysCommand } from './commands/keys.js';
import { lookupCommand } from './commands/lookup.js';
import { migrateCommand } from './commands/migrate.js';
import { serve } from './commands/serve.js';

const COMMANDS: Record<CommandName, { usage: string; summary: string }> = {
  serve: {
    usage: 'atdirectory serve [options]',
    summary: 'Serve the lookup protocol (TLS) from PostgreSQL, or from an embedded PostgreSQL when no database is configured.',
  },
  migrate: {
    usage: 'atdirectory migrate [options]',
    summary: 'Apply pending database migrations and exit.',
  },
  lookup: {
    usage: 'atdirectory lookup <atsign> [--root host:port] [--ca file | --insecure]',
    summary: 'Look an atsign up as an SDK would; prints host:port, or exits 1 when it is not found.',
  },
  keys: {
    usage: 'atdirectory keys create --registrar NAME --scope admin|registrar|read | keys list | keys revoke ID',
    summary: 'Manage admin API keys directly in the database (how the first admin key is made).',
  },
  import: {
    usage: 'atdirectory import <file.ndjson|file.csv|-> [--registrar NAME] [--atomic]',
    summary: 'Create or replace many atsigns from NDJSON or CSV (atsign,host,port), straight into the database.',
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(8)} ${command.summary}`);
  return `Usage: atdirectory <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun \`atdirectory <command> --help\` for its options; each option is also an ATDIR_* environment variable.\n`;
}

function commandHelp(name: CommandName): string {
  const command = COMMANDS[name];
  return `Usage: ${command.usage}\n\n${command.summary}\n\nOptions (flag, then environment variable):\n${describeOptions(name)}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (!(name in COMMANDS)) {
    process.stderr.write(`atdirectory: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  const command = name as CommandName;
  const { config, positionals, help } = parseCommandLine(command, rest);
  if (help) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  switch (command) {
    case 'serve':
    case 'migrate':
      if (positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(positionals[0])}`);
      if (command === 'migrate') {
        await migrateCommand(config);
        return 0;
      }
      await serve(config);
      return -1;
    case 'lookup':
      if (positionals.length !== 1) throw new ConfigError('lookup takes exactly one atsign, e.g. `atdirectory lookup @alice`');
      return lookupCommand(config, positionals[0]!);
    case 'keys':
      return keysCommand(config, positionals);
    case 'import':
      return importCommand(config, positionals);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve keeps running until a signal; every other command ends with its exit code.
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    const prefix = error instanceof ConfigError ? 'atdirectory: configuration error: ' : 'atdirectory: ';
    process.stderr.write(`${prefix}${(error as Error).message}\n`);
    process.exit(error instanceof ConfigError ? 2 : 1);
  },
);
