import { describe, expect, it } from 'vitest';
import { checkPort, normaliseAtsign, normaliseHost } from '../../src/directory/validation.js';

describe('normaliseAtsign', () => {
  it.each([
    ['alice', 'alice'],
    ['@alice', 'alice'],
    ['@ALICE', 'alice'],
    ['alice🛠', 'alice🛠'],
    ['  Bob ', 'bob'],
    ['a'.repeat(55), 'a'.repeat(55)],
    ['🛠'.repeat(55), '🛠'.repeat(55)],
  ])('%j → %j', (raw, key) => {
    expect(normaliseAtsign(raw)).toEqual({ key });
  });

  it.each([
    ['', 'the atsign is empty'],
    ['@', 'the atsign is empty'],
    ['a'.repeat(56), 'the atsign is longer than 55 characters'],
    ['al ice', 'the atsign contains U+0020; whitespace, control characters, ":" and a second "@" are not allowed'],
    ['al\u0000ice', 'the atsign contains U+0000; whitespace, control characters, ":" and a second "@" are not allowed'],
    ['al\u200bice', 'the atsign contains U+200B; whitespace, control characters, ":" and a second "@" are not allowed'],
    ['al:ice', 'the atsign contains ":"; whitespace, control characters, ":" and a second "@" are not allowed'],
    ['@@alice', 'the atsign contains a second "@"; whitespace, control characters, ":" and a second "@" are not allowed'],
    ['ali@ce', 'the atsign contains a second "@"; whitespace, control characters, ":" and a second "@" are not allowed'],
  ])('refuses %j', (raw, detail) => {
    expect(normaliseAtsign(raw)).toEqual({ problem: 'invalid-atsign', detail });
  });
});

describe('normaliseHost', () => {
  it.each([
    ['alice.example.com', 'alice.example.com'],
    ['ALICE.Example.COM', 'alice.example.com'],
    ['10.0.0.1', '10.0.0.1'],
    ['localhost', 'localhost'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    [`${'a'.repeat(63)}.example`, `${'a'.repeat(63)}.example`],
  ])('%j → %j', (raw, host) => {
    expect(normaliseHost(raw)).toEqual({ host });
  });

  it.each(['::1', '2001:db8::1', '[2001:db8::1]'])('refuses the IPv6 literal %j with an explanation', (raw) => {
    expect(normaliseHost(raw)).toMatchObject({ problem: 'ipv6-host', detail: expect.stringContaining('splits the answer host:port on ":"') });
  });

  it.each([
    ['', 'the host is empty'],
    ['a..b', '"a..b" has an empty label (two dots in a row, or a leading or trailing dot)'],
    ['example.com.', '"example.com." has an empty label (two dots in a row, or a leading or trailing dot)'],
    ['-a.example', '"-a" is not a DNS label (letters, digits and inner hyphens, at most 63 characters)'],
    ['a_b.example', '"a_b" is not a DNS label (letters, digits and inner hyphens, at most 63 characters)'],
    ['host:64', '"host:64" is not a DNS label (letters, digits and inner hyphens, at most 63 characters)'],
    [`${'a'.repeat(64)}.example`, `"${'a'.repeat(64)}" is not a DNS label (letters, digits and inner hyphens, at most 63 characters)`],
    ['1.2.3', '"1.2.3" is neither an IPv4 address nor a DNS name (a top-level label cannot be numeric)'],
    ['256.1.1.1', '"256.1.1.1" is neither an IPv4 address nor a DNS name (a top-level label cannot be numeric)'],
    [`${'a.'.repeat(127)}ab`, 'the host is longer than 253 characters'],
  ])('refuses %j', (raw, detail) => {
    expect(normaliseHost(raw)).toEqual({ problem: 'invalid-host', detail });
  });
});

describe('checkPort', () => {
  it.each([1, 64, 65535])('accepts %j', (port) => expect(checkPort(port)).toBeUndefined());
  it.each([0, 65536, -1, 1.5, '6464', null])('refuses %j', (port) => {
    expect(checkPort(port)).toEqual({ problem: 'invalid-port', detail: 'the port must be an integer from 1 to 65535' });
  });
});
