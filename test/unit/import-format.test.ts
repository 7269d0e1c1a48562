import { describe, expect, it } from 'vitest';
import { isCsvHeader, parseLine, sniffFormat } from '../../src/import/format.js';
import { ImportTooLarge, readLines, type NumberedLine } from '../../src/import/lines.js';

describe('parseLine, CSV', () => {
  it.each([
    ['alice,alice.example.com,6464', { atsign: 'alice', host: 'alice.example.com', port: 6464 }],
    ['@Alice , Alice.Example.COM , 64', { atsign: 'alice', host: 'alice.example.com', port: 64 }],
    ['"@bob","bob.example.com","1"', { atsign: 'bob', host: 'bob.example.com', port: 1 }],
    ['🦄,10.0.0.1,65535', { atsign: '🦄', host: '10.0.0.1', port: 65535 }],
    ['"a,b",h.example,5', { atsign: 'a,b', host: 'h.example', port: 5 }],
  ])('accepts %s', (line, record) => {
    expect(parseLine('csv', line)).toEqual(record);
  });

  it.each([
    ['alice,alice.example.com', 'invalid-line', 'expected 3 fields (atsign,host,port), got 2'],
    ['alice,h.example,1,extra', 'invalid-line', 'expected 3 fields (atsign,host,port), got 4'],
    ['"alice,h.example,1', 'invalid-line', 'a quoted field is not closed'],
    ['"al"ice,h.example,1', 'invalid-line', 'text after a closing quote; a quote inside a quoted field is written ""'],
    [',h.example,1', 'invalid-atsign', 'the atsign is empty'],
    ['a@b,h.example,1', 'invalid-atsign', 'the atsign contains a second "@"; whitespace, control characters, ":" and a second "@" are not allowed'],
    ['alice,bad host,1', 'invalid-host', '"bad host" is not a DNS label (letters, digits and inner hyphens, at most 63 characters)'],
    ['alice,[::1],1', 'ipv6-host', expect.stringContaining('IPv6 addresses cannot be served')],
    ['alice,h.example,0', 'invalid-port', 'the port must be an integer from 1 to 65535'],
    ['alice,h.example,65536', 'invalid-port', 'the port must be an integer from 1 to 65535'],
    ['alice,h.example,64.5', 'invalid-port', 'the port must be an integer from 1 to 65535'],
    ['alice,h.example,', 'invalid-port', 'the port must be an integer from 1 to 65535'],
  ])('refuses %s as %s', (line, problem, detail) => {
    expect(parseLine('csv', line)).toEqual({ problem, detail });
  });

  it('recognises the optional header', () => {
    expect(isCsvHeader('atsign,host,port')).toBe(true);
    expect(isCsvHeader(' "Atsign" , "HOST" ,port ')).toBe(true);
    expect(isCsvHeader('alice,host,port')).toBe(false);
  });
});

describe('parseLine, NDJSON', () => {
  it('accepts an object with exactly atsign, host and port', () => {
    expect(parseLine('ndjson', '{"atsign":"@alice","host":"A.example","port":1}')).toEqual({ atsign: 'alice', host: 'a.example', port: 1 });
  });

  it.each([
    ['{"atsign":"a","host":"h.example"', 'malformed-json', expect.any(String)],
    ['[1,2,3]', 'invalid-line', 'each NDJSON line must be an object {"atsign","host","port"}'],
    ['"alice"', 'invalid-line', 'each NDJSON line must be an object {"atsign","host","port"}'],
    ['{"atsign":"a","host":"h.example","port":1,"registrar":"x"}', 'unknown-field', 'unknown field "registrar"'],
    ['{"atsign":1,"host":"h.example","port":1}', 'invalid-atsign', 'the atsign must be a string'],
    ['{"atsign":"a","port":1}', 'invalid-host', 'the host must be a string'],
    ['{"atsign":"a","host":"h.example","port":"64"}', 'invalid-port', 'the port must be an integer from 1 to 65535'],
    ['{"atsign":"a","host":"h.example"}', 'invalid-port', 'the port must be an integer from 1 to 65535'],
  ])('refuses %s as %s', (line, problem, detail) => {
    expect(parseLine('ndjson', line)).toEqual({ problem, detail });
  });

  it('is recognised from the first line', () => {
    expect(sniffFormat('  {"atsign":"a"}')).toBe('ndjson');
    expect(sniffFormat('atsign,host,port')).toBe('csv');
  });
});

async function collect(chunks: Array<string | Buffer>, maxLineBytes = 100, maxBytes = 1e9): Promise<NumberedLine[]> {
  const lines: NumberedLine[] = [];
  for await (const line of readLines(chunks, { maxLineBytes, maxBytes })) lines.push(line);
  return lines;
}

describe('readLines', () => {
  it('numbers lines across chunk boundaries, dropping \\r and a leading BOM', async () => {
    expect(await collect(['\uFEFFa,b', ',c\r\nd', '\n\ne\r\n', 'last'])).toEqual([
      { number: 1, text: 'a,b,c' },
      { number: 2, text: 'd' },
      { number: 3, text: '' },
      { number: 4, text: 'e' },
      { number: 5, text: 'last' },
    ]);
  });

  it('keeps a multi-byte character split between chunks whole', async () => {
    const unicorn = Buffer.from('🦄,h.example,1\n');
    expect(await collect([unicorn.subarray(0, 2), unicorn.subarray(2)])).toEqual([{ number: 1, text: '🦄,h.example,1' }]);
  });

  it('reports an over-long line without holding it, and goes on with the next', async () => {
    const long = 'x'.repeat(60);
    expect(await collect([long, long, '\nok\n', long + long], 100)).toEqual([
      { number: 1, failure: { problem: 'invalid-line', detail: 'the line is longer than 100 bytes' } },
      { number: 2, text: 'ok' },
      { number: 3, failure: { problem: 'invalid-line', detail: 'the line is longer than 100 bytes' } },
    ]);
  });

  it('reports a line that is not UTF-8', async () => {
    expect(await collect([Buffer.from([0x61, 0xff, 0x0a, 0x62])])).toEqual([
      { number: 1, failure: { problem: 'invalid-line', detail: 'the line is not valid UTF-8' } },
      { number: 2, text: 'b' },
    ]);
  });

  it('stops with ImportTooLarge once the input passes the limit', async () => {
    await expect(collect(['a\n'.repeat(10), 'b\n'.repeat(10)], 100, 30)).rejects.toEqual(new ImportTooLarge(30));
  });
});
