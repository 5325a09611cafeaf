// One device slot per process: stages that compute on the accelerator run one at a time, even across the
// concurrent runs watch mode may have in flight; CPU-only stages bypass it.
export class Slot {
  private held = 0;
  private readonly waiters: Array<() => void> = [];
  constructor(private readonly capacity: number) {}

  get busy(): boolean {
    return this.held >= this.capacity;
  }

  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.held < this.capacity) {
      this.held++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(wake);
    });
    this.held++;
    return this.releaser();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.held--;
      this.waiters.shift()?.();
    };
  }
}

export const deviceSlot = new Slot(1);

/** Stage kinds that only read and write small JSON files (no tensors on the device). */
const CPU_KINDS = new Set(['group', 'aggregate']);

export function stageResource(kind: string, module?: { resource?: unknown }): 'cpu' | 'device' {
  if (module?.resource === 'cpu' || module?.resource === 'device') return module.resource;
  return CPU_KINDS.has(kind) ? 'cpu' : 'device';
}
