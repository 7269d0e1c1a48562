import { describe, expect, it } from 'vitest';
import { parseRequestTarget } from '../../src/https/request-target.js';

const MAX = 255;
const parse = (url: string) => parseRequestTarget(url, MAX);
const lookup = (key: string, redirect = '') => ({ kind: 'lookup', key, redirect });

describe('the key: first path segment, decoded, one @ off, then as a port-64 line', () => {
  it.each([
    ['/alice', 'alice'],
    ['/@alice', 'alice'],
    ['/%40alice', 'alice'],
    ['/@@alice', '@alice'],
    ['/ALICE', 'alice'],
    ['/@Alice', 'alice'],
    ['/alice%F0%9F%9B%A0', 'alice🛠'],
    ['/ALICE%F0%9F%9B%A0', 'alice🛠'],
    ['/%20alice%09', 'alice'],
    ['/%20@alice', '@alice'],
    ['/al%2Fice', 'al/ice'],
    ['/al+ice', 'al+ice'],
    ['/alice.example', 'alice.example'],
    ['/@exit', 'exit'],
    ['/@@exit', '@exit'],
  ])('%s → %s', (url, key) => {
    expect(parse(url)).toEqual(lookup(key));
  });
});

describe('what follows the atSign', () => {
  it.each([
    ['/alice?x=1', ''],
    ['/alice?x=/y', ''],
    ['/alice/', ''],
    ['/alice/?x=1', ''],
    ['/alice/rest/of/path', '/rest/of/path'],
    ['/@alice/rest', '/rest'],
    ['/alice/rest?x=1&y=%2F', '/rest?x=1&y=%2F'],
    ['/alice/a%20b/%F0%9F%9B%A0', '/a%20b/%F0%9F%9B%A0'],
    ['/alice/rest?', '/rest'],
    ['/alice//x', '//x'],
  ])('%s → redirect %j', (url, redirect) => {
    expect(parse(url)).toEqual(lookup('alice', redirect));
  });
});

describe('no atSign at all: not a lookup', () => {
  it.each(['/', '/@', '/%40', '/%20', '/%20%09', '/?x=1', '//alice', '', '*', 'http://root.example/alice'])('%j', (url) => {
    expect(parse(url)).toEqual({ kind: 'empty' });
  });
});

describe('a segment no record can match', () => {
  it.each(['/%ZZ', '/alice%', '/alice%F', '/%E0%A4%A', '/%FF', '/%C3%28', '/%ED%A0%80'])('malformed percent-encoding or UTF-8: %s', (url) => {
    expect(parse(url)).toEqual({ kind: 'unmatchable' });
  });

  it('counts the port-64 line limit in UTF-16 units, after decoding and without the @', () => {
    expect(parse(`/${'a'.repeat(MAX)}`)).toEqual(lookup('a'.repeat(MAX)));
    expect(parse(`/@${'a'.repeat(MAX)}`)).toEqual(lookup('a'.repeat(MAX)));
    expect(parse(`/${'a'.repeat(MAX + 1)}`)).toEqual({ kind: 'unmatchable' });
    // Each emoji is 12 characters encoded, 2 UTF-16 units decoded.
    const emoji = '%F0%9F%9B%A0';
    expect(parse(`/a${emoji.repeat(127)}`)).toEqual(lookup(`a${'🛠'.repeat(127)}`));
    expect(parse(`/${emoji.repeat(128)}`)).toEqual({ kind: 'unmatchable' });
    // Whitespace counts, as on port 64, where the limit applies before trimming.
    expect(parse(`/${'a'.repeat(MAX)}%20`)).toEqual({ kind: 'unmatchable' });
  });
});
