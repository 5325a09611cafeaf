// The content hash of a file, as cache keys and output digests use it. A file of up to one chunk (64 MiB) hashes
// as its plain sha256, so small files match `sha256sum`. A larger one (checkpoint shards: 14 GB for a 7B model)
// hashes as the sha256 of its chunks' sha256 digests. Worker threads hash the chunks in parallel, reading the file
// themselves, so on a machine with many cores the cost is closer to the disk or page cache's bandwidth than to one
// core's sha256 speed (about 2 GB/s).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export const HASH_CHUNK_BYTES = 64 * 1024 * 1024;
const TREE_PREFIX = `lopper chunked sha256 v1, ${HASH_CHUNK_BYTES} bytes per chunk\n`;

// Plain JS (eval'd), so that the same worker runs under tsx and from dist.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const buffer = Buffer.allocUnsafe(4 << 20);
parentPort.on('message', ({ id, path, start, end }) => {
  let fd;
  try {
    fd = openSync(path, 'r');
    const hash = createHash('sha256');
    for (let pos = start; pos < end; ) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, end - pos), pos);
      if (n === 0) throw new Error('the file ended at byte ' + pos + ' while it was being hashed (it changed meanwhile)');
      hash.update(buffer.subarray(0, n));
      pos += n;
    }
    parentPort.postMessage({ id, hex: hash.digest('hex') });
  } catch (e) {
    parentPort.postMessage({ id, error: (e && e.message) || String(e) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

interface ChunkJob { path: string; start: number; end: number; resolve(hex: string): void; reject(e: Error): void }

/** A lazily started pool of hashing threads; threads keep the process alive only while they have work. */
class HashPool {
  private readonly idle: Worker[] = [];
  private readonly queue: ChunkJob[] = [];
  private readonly running = new Map<number, ChunkJob>();
  private workers = 0;
  private nextId = 0;
  constructor(private readonly size: number) {}

  hash(path: string, start: number, end: number): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, start, end, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let worker = this.idle.pop();
      if (!worker && this.workers < this.size) worker = this.spawn();
      if (!worker) return;
      const job = this.queue.shift()!;
      const id = this.nextId++;
      this.running.set(id, job);
      (worker as Worker & { jobId?: number }).jobId = id;
      worker.ref();
      worker.postMessage({ id, path: job.path, start: job.start, end: job.end });
    }
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    this.workers++;
    worker.on('message', (msg: { id: number; hex?: string; error?: string }) => {
      const job = this.running.get(msg.id);
      this.running.delete(msg.id);
      worker.unref();
      this.idle.push(worker);
      if (job) {
        if (msg.error !== undefined) job.reject(new Error(`${job.path}: ${msg.error}`));
        else job.resolve(msg.hex!);
      }
      this.pump();
    });
    worker.on('error', (e) => this.lose(worker, e));
    worker.on('exit', (code) => this.lose(worker, new Error(`a hashing thread exited with code ${code}`)));
    return worker;
  }

  private lose(worker: Worker, e: Error): void {
    const id = (worker as Worker & { jobId?: number }).jobId;
    const job = id === undefined ? undefined : this.running.get(id);
    if (id !== undefined) this.running.delete(id);
    const i = this.idle.indexOf(worker);
    if (i >= 0) this.idle.splice(i, 1);
    this.workers--;
    job?.reject(new Error(`${job.path}: ${e.message}`));
    this.pump();
  }
}

let pool: HashPool | undefined;
function hashPool(): HashPool {
  const env = Number(process.env.LOPPER_HASH_THREADS);
  pool ??= new HashPool(Number.isInteger(env) && env > 0 ? env : Math.min(16, availableParallelism()));
  return pool;
}

async function plainSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 of each HASH_CHUNK_BYTES chunk of the first `size` bytes, hashed on the pool's threads. */
export function chunkDigests(path: string, size: number): Promise<string[]> {
  const p = hashPool();
  const chunks: Promise<string>[] = [];
  for (let start = 0; start < size; start += HASH_CHUNK_BYTES) chunks.push(p.hash(path, start, Math.min(size, start + HASH_CHUNK_BYTES)));
  return Promise.all(chunks);
}

/** The content hash of the file at `path` (see the top of this file). */
export async function contentHash(path: string): Promise<string> {
  const { size } = await stat(path);
  if (size <= HASH_CHUNK_BYTES) return plainSha256(path);
  const digests = await chunkDigests(path, size);
  return createHash('sha256').update(TREE_PREFIX + digests.join('\n')).digest('hex');
}
