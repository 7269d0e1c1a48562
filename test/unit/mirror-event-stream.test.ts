import { describe, expect, it } from 'vitest';
import { EventStreamParser, EventStreamTooLong } from '../../src/mirror/sse.js';

const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('event-stream parser', () => {
  it('parses the feed\'s change, settled and keepalive frames', () => {
    const parser = new EventStreamParser();
    const events = parser.push(bytes(': keepalive\n\nid: 101\nevent: change\ndata: {"version":101}\n\nid: 150\nevent: settled\ndata: {"settled":150}\n\n'));
    expect(events).toEqual([
      { id: '101', event: 'change', data: '{"version":101}' },
      { id: '150', event: 'settled', data: '{"settled":150}' },
    ]);
  });

  it('holds an event split anywhere across reads, even inside a UTF-8 sequence or a CRLF', () => {
    const text = 'id: 7\r\nevent: change\r\ndata: {"atsign":"alice🛠"}\r\n\r\n';
    const whole = bytes(text);
    for (let cut = 1; cut < whole.length; cut++) {
      const parser = new EventStreamParser();
      const events = [...parser.push(whole.subarray(0, cut)), ...parser.push(whole.subarray(cut))];
      expect(events, `cut at byte ${cut}`).toEqual([{ id: '7', event: 'change', data: '{"atsign":"alice🛠"}' }]);
    }
  });

  it('accepts CR alone as a line end, joins data lines, and defaults the event type', () => {
    const parser = new EventStreamParser();
    // A final CR may be half of a CRLF: the line it ends is complete only once the next byte comes.
    expect(parser.push(bytes('data: one\rdata:two\r\r'))).toEqual([]);
    expect(parser.push(bytes(':'))).toEqual([{ id: undefined, event: 'message', data: 'one\ntwo' }]);
  });

  it('ignores comments, unknown fields, ids with NUL and events without data', () => {
    const parser = new EventStreamParser();
    expect(parser.push(bytes(': note\nretry: 10\nevent: settled\n\nid: a\0b\ndata: x\n\n'))).toEqual([{ id: undefined, event: 'message', data: 'x' }]);
  });

  it('refuses a line longer than its limit instead of buffering it', () => {
    const parser = new EventStreamParser(100);
    expect(() => parser.push(bytes(`data: ${'x'.repeat(200)}`))).toThrow(EventStreamTooLong);
  });
});
