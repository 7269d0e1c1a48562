/** One dispatched Server-Sent Event. */
export interface ServerSentEvent {
  /** The `id:` field of this event, if it had one. */
  id: string | undefined;
  /** `event:`; `message` when absent. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

/** A line longer than the parser will hold: a broken or hostile source, never a real event. */
export class EventStreamTooLong extends Error {}

/**
 * The event-stream format (WHATWG HTML, "Server-sent events") as a push parser: feed it the body's
 * chunks as they arrive, get back the events they complete. Lines end with LF, CRLF or CR, and a
 * chunk may end anywhere, even inside a UTF-8 sequence or between the CR and LF of one line break.
 */
export class EventStreamParser {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  constructor(private readonly maxLineLength = 1024 * 1024) {}

  push(chunk: Uint8Array): ServerSentEvent[] {
    this.pending += this.decoder.decode(chunk, { stream: true });
    const events: ServerSentEvent[] = [];
    let start = 0;
    for (;;) {
      const end = nextLineBreak(this.pending, start);
      if (end === -1) break;
      // A CR at the very end may be the first half of a CRLF that the next chunk completes.
      if (this.pending[end] === '\r' && end === this.pending.length - 1) break;
      const line = this.pending.slice(start, end);
      start = end + (this.pending[end] === '\r' && this.pending[end + 1] === '\n' ? 2 : 1);
      const event = this.takeLine(line);
      if (event) events.push(event);
    }
    this.pending = this.pending.slice(start);
    if (this.pending.length > this.maxLineLength) throw new EventStreamTooLong(`an event-stream line is longer than ${this.maxLineLength} characters`);
    return events;
  }

  private takeLine(line: string): ServerSentEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    return undefined;
  }

  private dispatch(): ServerSentEvent | undefined {
    const event = this.data.length === 0 ? undefined : { id: this.id, event: this.event || 'message', data: this.data.join('\n') };
    this.data = [];
    this.event = '';
    this.id = undefined;
    return event;
  }
}

function nextLineBreak(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x0a || code === 0x0d) return i;
  }
  return -1;
}
