/**
 * Counts misses within a sliding window. The reference root server counts a connection's misses
 * over its whole life, which eventually closes the one connection that the Python, Go and Java SDKs
 * keep for days (and the Python SDK then spins, the Go SDK never reconnects). Forgetting old misses
 * keeps throttling aimed at enumeration.
 */
export class MissWindow {
  private readonly times: number[] = [];

  /** `cap`: the count never needs to exceed the highest threshold, so memory stays bounded. */
  constructor(
    private readonly windowMs: number,
    private readonly cap: number,
  ) {}

  /** Records a miss at `now` and returns how many misses the window holds (at most `cap`). */
  record(now: number): number {
    const times = this.times;
    const horizon = now - this.windowMs;
    let expired = 0;
    while (expired < times.length && times[expired]! <= horizon) expired++;
    if (times.length - expired >= this.cap) expired = times.length - this.cap + 1;
    if (expired > 0) times.splice(0, expired);
    times.push(now);
    return times.length;
  }
}
