// Bounded concurrency for file I/O: a few reads or writes in flight keep the disk and page cache busy (one
// awaited read at a time leaves NVMe mostly idle), while the byte bound keeps host memory flat.

/** Runs at most `limit` jobs at once; the others wait in arrival order. */
export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((wake) => this.waiting.push(wake));
    try {
      return await job();
    } finally {
      // Hand the slot straight to the next waiter, so the count never dips below what is really running.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * A FIFO of issued writes bounded by count and bytes. `add` waits for the oldest writes to finish when the
 * window is full; a failed write is reported by the next `add` or by `drain`, never as an unhandled rejection.
 */
export class WriteWindow {
  private readonly pending: { settled: Promise<unknown>; bytes: number }[] = [];
  private bytes = 0;

  constructor(private readonly maxWrites: number, private readonly maxBytes: number) {}

  /**
   * Issues `start` once the window has room; resolves then, with `ended`: the write's end (never rejecting; boxed,
   * since a promise resolved with a promise would wait for it).
   */
  async add(bytes: number, start: () => Promise<void>): Promise<{ ended: Promise<unknown> }> {
    while (this.pending.length >= this.maxWrites || (this.pending.length > 0 && this.bytes + bytes > this.maxBytes)) {
      await this.retireOldest();
    }
    // `settled` resolves to the error (or undefined), so a rejection always has a handler attached.
    const settled = start().then(() => undefined, (e: unknown) => e ?? new Error('write failed'));
    this.pending.push({ settled, bytes });
    this.bytes += bytes;
    return { ended: settled };
  }

  /** Waits for every issued write; throws the first failure. */
  async drain(): Promise<void> {
    while (this.pending.length > 0) await this.retireOldest();
  }

  /** Waits for every issued write, ignoring failures (cleanup after another error). */
  async settle(): Promise<void> {
    await Promise.all(this.pending.map((p) => p.settled));
    this.pending.length = 0;
    this.bytes = 0;
  }

  private async retireOldest(): Promise<void> {
    const oldest = this.pending.shift()!;
    this.bytes -= oldest.bytes;
    const error = await oldest.settled;
    if (error !== undefined) throw error;
  }
}
