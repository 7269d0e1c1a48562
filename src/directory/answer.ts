/**
 * Answers are built once, as the exact bytes to send, and reused for every lookup: the hot path
 * does one `write` of a ready Buffer. Each answer ends with `@`, the prompt for the next request,
 * because Dart, Python and Go clients parse one read at a time and break on a split answer.
 */

export const PROMPT = Buffer.from('@');

export const NOT_FOUND = Buffer.from('null\r\n@');

export function encodeAnswer(host: string, port: number): Buffer {
  return Buffer.from(`${host}:${port}\r\n@`, 'utf8');
}
