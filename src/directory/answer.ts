/**
 * Answers are built once, as the exact bytes to send, and reused for every lookup: the hot path
 * does one `write` of a ready Buffer. Each answer ends with `@`, the prompt for the next request,
 * because Dart, Python and Go clients parse one read at a time and break on a split answer.
 */

export const PROMPT = Buffer.from('@');

export const NOT_FOUND = Buffer.from('null\r\n@');

/**
 * A Buffer that a subclass can give fields of its own. Node's Buffers are instances of an internal
 * Uint8Array subclass whose prototype is `Buffer.prototype`; this is the same construction, so
 * `socket.write` takes it as a Buffer, without a copy. The cache makes each answer its own cache
 * entry this way, one object instead of two for every cached atsign (docs/benchmarks.md, Memory).
 */
export class AnswerBuffer extends Uint8Array {}
Object.setPrototypeOf(AnswerBuffer.prototype, Buffer.prototype);

/**
 * Answers live for as long as they are cached, so they are packed into slabs of their own. Made with
 * Buffer.from they would come from Node's shared 8 KiB pool, whose slabs are mostly filled by
 * short-lived buffers (database replies, socket reads): one cached answer then pins a whole slab,
 * which measured 310 bytes of memory per 30-byte answer at a million cached atsigns.
 */
const SLAB_BYTES = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

type AnswerKind<T> = new (buffer: ArrayBuffer, byteOffset: number, length: number) => T;

/** `host:port\r\n@`, as a Buffer or, given `Kind` (a subclass of AnswerBuffer), as one of those. */
export function encodeAnswer(host: string, port: number): Buffer;
export function encodeAnswer<T extends AnswerBuffer>(host: string, port: number, Kind: AnswerKind<T>): T;
export function encodeAnswer(host: string, port: number, Kind: AnswerKind<AnswerBuffer> = AnswerBuffer): AnswerBuffer | Buffer {
  const text = `${host}:${port}\r\n@`;
  const length = Buffer.byteLength(text, 'utf8');
  if (slabUsed + length > slab.length) {
    slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, length));
    slabUsed = 0;
  }
  slab.write(text, slabUsed, 'utf8');
  const answer = new Kind(slab.buffer as ArrayBuffer, slab.byteOffset + slabUsed, length);
  slabUsed += length;
  return answer;
}
