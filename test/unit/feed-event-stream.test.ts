import { describe, expect, it } from 'vitest';
import { EventStream, changeEvent } from '../../src/feed/event-stream.js';

const change = (version: number) =>
  changeEvent({ version, previous: version - 1, atsign: `a${version}`, host: 'h.example', port: 1, status: 'active', changedAt: '2026-01-01T00:00:00.000Z', signature: 'c2ln' });

function drain(stream: EventStream): string {
  let text = '';
  for (let chunk = stream.read() as string | null; chunk !== null; chunk = stream.read() as string | null) text += chunk;
  return text;
}

describe('server-sent event stream', () => {
  it('opens with a keepalive comment, then frames changes and settled events', () => {
    const stream = new EventStream(0, 1024 * 1024);
    stream.sendChange(change(3));
    stream.sendSettled(5);
    expect(drain(stream)).toBe(
      ': keepalive\n\n' +
        `id: 3\nevent: change\ndata: {"version":3,"previous":2,"atsign":"a3","host":"h.example","port":1,"status":"active","changedAt":"2026-01-01T00:00:00.000Z","signature":"c2ln"}\n\n` +
        'id: 5\nevent: settled\ndata: {"settled":5}\n\n',
    );
    expect(stream.position).toBe(5);
  });

  it('never sends a change twice nor moves the resume point backwards', () => {
    const stream = new EventStream(10, 1024 * 1024);
    drain(stream);
    stream.sendChange(change(9));
    stream.sendChange(change(10));
    stream.sendSettled(10);
    stream.sendChange(change(12));
    stream.sendChange(change(12));
    stream.sendSettled(11);
    expect(drain(stream).match(/^id: .*/gm)).toEqual(['id: 12']);
    expect(stream.position).toBe(12);
  });

  it('drops a subscriber whose unsent events pass the limit', () => {
    const stream = new EventStream(0, 4096);
    for (let version = 1; version <= 100 && !stream.destroyed; version++) stream.sendChange(change(version));
    expect(stream.destroyed).toBe(true);
    expect(stream.position).toBeLessThan(100);
  });

  it('tells a catching-up writer when the reader has taken what was buffered', async () => {
    const stream = new EventStream(0, 1024 * 1024);
    for (let version = 1; version <= 200; version++) stream.sendChange(change(version));
    let ready = false;
    const waiting = stream.readerReady().then(() => (ready = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(ready).toBe(false);
    drain(stream);
    await waiting;
    expect(ready).toBe(true);
  });

  it('releases a catching-up writer when the stream closes', async () => {
    const stream = new EventStream(0, 1024 * 1024);
    for (let version = 1; version <= 200; version++) stream.sendChange(change(version));
    const waiting = stream.readerReady();
    stream.destroy();
    await expect(waiting).resolves.toBeUndefined();
  });
});
