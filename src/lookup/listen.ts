import type { AddressInfo, Server } from 'node:net';
import type { Logger } from 'pino';

export interface PublicListen {
  host: string;
  port: number;
  logger: Logger;
  /** What listens, for messages: "the lookup server", "HTTPS lookups". */
  name: string;
  /** How to avoid a privileged port, e.g. "--lookup-port 6464, and forward 64 to it". */
  unprivileged: string;
}

/**
 * Binds a public port (port 64, HTTPS lookups) and resolves with the bound address. `::` falls back
 * to IPv4 where IPv6 is unavailable; a refusal says how to fix it (a privileged port needs root or
 * a capability). A deep accept queue absorbs reconnect bursts (atServers open one connection per
 * lookup); the kernel caps it at net.core.somaxconn.
 */
export async function listenPublic(server: Server, options: PublicListen): Promise<AddressInfo> {
  const { host, port, logger, name } = options;
  try {
    return await bind(server, host, port);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (host === '::' && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
      logger.warn(`IPv6 is unavailable here; ${name} listens on IPv4 only (0.0.0.0)`);
      return bind(server, '0.0.0.0', port);
    }
    throw describeBindError(error as NodeJS.ErrnoException, options);
  }
}

function bind(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function describeBindError(error: NodeJS.ErrnoException, { host, port, name, unprivileged }: PublicListen): Error {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const reason =
    error.code === 'EACCES'
      ? `ports below 1024 need privilege. Either choose another port (${unprivileged}), or let Node bind low ports: sudo setcap cap_net_bind_service=+ep "$(command -v node)"`
      : error.code === 'EADDRINUSE'
        ? 'the port is already in use'
        : error.message;
  return new Error(`cannot listen for ${name} on ${where}: ${reason}`, { cause: error });
}
