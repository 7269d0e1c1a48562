import { describe, expect, it } from 'vitest';
import { MAX_REPLY_LENGTH, parseReply } from '../../src/upstream/reply.js';

describe('parseReply', () => {
  it.each([
    ['null', 'null'],
    ['null\r', 'null with the \\r before the newline'],
    [' null ', 'null with surrounding whitespace'],
  ])('%j is not_found (%s)', (line) => {
    expect(parseReply(line)).toEqual({ kind: 'not_found' });
  });

  it.each([
    ['alice.example.com:6464\r', 'alice.example.com:6464\r\n@'],
    ['vip.ve.atsign.zone:25000', 'vip.ve.atsign.zone:25000\r\n@'],
    ['Alice.Example.COM:64', 'alice.example.com:64\r\n@'],
    ['10.0.0.1:1', '10.0.0.1:1\r\n@'],
    ['a.example:65535', 'a.example:65535\r\n@'],
  ])('%j is found, answered as %j', (line, answer) => {
    const reply = parseReply(line);
    expect(reply.kind).toBe('found');
    expect(reply.kind === 'found' && reply.answer.toString()).toBe(answer);
  });

  it.each([
    ['', 'an empty line'],
    ['NULL', 'null in capitals (the root never sends it)'],
    ['error:no such atsign', 'an error reply'],
    ['data:alice.example.com:64', 'a data: reply'],
    ['alice.example.com', 'no port'],
    ['alice.example.com:', 'an empty port'],
    [':6464', 'an empty host'],
    ['alice.example.com:0', 'port 0'],
    ['alice.example.com:65536', 'a port above 65535'],
    ['alice.example.com:+64', 'a signed port'],
    ['alice.example.com:64 extra', 'trailing words'],
    ['alice.example.com:64:1', 'two colons'],
    ['[::1]:64', 'an IPv6 literal'],
    ['@alice.example.com:64', 'an "@"'],
    ['under_score.example:64', 'a host that is not a DNS name'],
    ['1.2.3:64', 'a numeric top-level label'],
    ['a..example:64', 'an empty label'],
  ])('%j is a bad answer (%s)', (line) => {
    expect(parseReply(line)).toEqual({ kind: 'bad', line });
  });

  it('keeps the longest line it accepts above any servable answer', () => {
    const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}:65535\r`;
    expect(longest.length).toBeLessThan(MAX_REPLY_LENGTH);
    expect(parseReply(longest).kind).toBe('found');
  });
});
