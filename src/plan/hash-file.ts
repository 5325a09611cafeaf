// The planner's default file hash: the content hash (content-hash.ts). The runner passes a memoized one instead.
import { contentHash } from './content-hash.js';

export type HashFile = (absPath: string) => Promise<string>;

export const sha256File: HashFile = contentHash;
