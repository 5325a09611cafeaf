// The planner's default file hash: sha256 of the bytes, streamed. The runner passes a memoized one instead.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export type HashFile = (absPath: string) => Promise<string>;

export async function sha256File(absPath: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(absPath, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
