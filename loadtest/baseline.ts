/**
 * The limit atdirectory is measured against: a bare node:tls server that speaks just enough of the
 * protocol (prompt, one constant answer per line, `@exit`) with the same certificate and TLS
 * options as atdirectory. No cache, no database, no limits, no metrics.
 *
 *   npx tsx loadtest/baseline.ts --cert cert.pem --key key.pem [--port 0]
 *
 * Prints `{"port":N}` once listening; stops on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const ANSWER = Buffer.from('alice.example.com:6464\r\n@');
const PROMPT = Buffer.from('@');

const { values } = parseArgs({ options: { cert: { type: 'string' }, key: { type: 'string' }, port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } } });
if (!values.cert || !values.key) throw new Error('usage: npx tsx loadtest/baseline.ts --cert cert.pem --key key.pem [--port 0]');

const server = tls.createServer({ cert: readFileSync(values.cert), key: readFileSync(values.key), minVersion: 'TLSv1.2' }, (socket) => {
  socket.write(PROMPT);
  let pending = '';
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line === '@exit') return socket.end();
      socket.write(ANSWER);
    }
  });
  socket.on('error', () => undefined);
});
server.on('tlsClientError', (_error, socket) => socket.destroy());
// The same socket options atdirectory sets on accepted connections.
server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
server.listen({ host: values.host, port: Number(values.port), backlog: 4096 }, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
