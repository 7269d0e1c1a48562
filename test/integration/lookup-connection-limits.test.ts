import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { RawClient, connectTcp } from '../support/raw-client.js';

let database: TestDatabase;
let lookup: TestLookup;

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  lookup = await startTestLookup(database.url, ['--handshake-timeout', '300ms', '--idle-timeout', '1s']);
});

afterAll(async () => {
  await lookup?.stop();
  await database?.drop();
});

const ERROR = 50;

describe('connections that never complete TLS (load-balancer and uptime probes)', () => {
  it('closes a silent TCP connection after the handshake timeout, logging nothing at error level', async () => {
    const socket = await connectTcp(lookup.port);
    const started = performance.now();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(lookup.logs.filter((line) => line.level >= ERROR)).toEqual([]);
    expect(lookup.logs.some((line) => line.msg === 'TLS handshake did not complete')).toBe(true);
  });

  it('shrugs off a probe that connects and hangs up, and plain-text garbage', async () => {
    const probe = await connectTcp(lookup.port);
    probe.destroy();
    const garbage = await connectTcp(lookup.port);
    garbage.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => garbage.once('close', resolve));
    const client = await RawClient.connect(lookup.port);
    client.send('alice\n');
    expect(await client.waitForText('@alice.example.com:6464\r\n@')).toBe('@alice.example.com:6464\r\n@');
    client.close();
    expect(lookup.logs.filter((line) => line.level >= ERROR)).toEqual([]);
  });
});

describe('idle connections', () => {
  it('are closed after the idle timeout', async () => {
    const client = await RawClient.connect(lookup.port);
    const started = performance.now();
    await client.closed;
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
    expect(client.text).toBe('@');
  });

  it('stay open while they keep asking', async () => {
    const client = await RawClient.connect(lookup.port);
    for (let i = 1; i <= 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      client.send('alice\n');
      await client.waitUntil(() => client.text.split('6464').length === i + 1);
    }
    expect(client.isClosed).toBe(false);
    client.close();
  });
});

describe('shutdown', () => {
  it('stops accepting, delivers in-flight answers, then closes every connection', async () => {
    const drained = await startTestLookup(database.url, ['--miss-delay', '500ms', '--drain-timeout', '5s']);
    const idle = await RawClient.connect(drained.port);
    const busy = await RawClient.connect(drained.port);
    busy.send('nosuch1\n');
    await busy.waitForText('@null\r\n@');
    busy.send('nosuch2\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stopped = drained.stop();
    await idle.closed;
    expect(idle.text).toBe('@');
    await busy.closed;
    expect(busy.text).toBe('@null\r\n@null\r\n@');
    await stopped;
    await expect(RawClient.connect(drained.port)).rejects.toThrow();
  });
});
