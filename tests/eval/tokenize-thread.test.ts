// Perplexity ids tokenized on a worker thread equal the main thread's (perplexityIds) for a tokenizer.json
// tokenizer (stories260K, and one lopper trains: byte-level BPE), and a llama2.c vocabulary encodes on the main
// thread with the same result.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { perplexityIds } from '../../src/eval/perplexity.js';
import { perplexityIdsInThread, textsTokenizedInThreads } from '../../src/eval/tokenize-thread.js';
import { isHfTokenizer, loadTokenizer } from '../../src/model/tokenizer.js';
import { MODEL, SHARED, TINYSTORIES } from '../prune/stories260k-helpers.js';

const LLAMA2C_TOKENIZER = join(SHARED, 'models/stories260K-llama2c/tok512.bin');

describe('perplexity ids on a worker thread', () => {
  it('equal the main thread\'s for tokenizer.json and llama2.c tokenizers', async (t) => {
    for (const p of [MODEL, TINYSTORIES, LLAMA2C_TOKENIZER]) if (!existsSync(p)) return t.skip(`missing ${p}`);
    const text = readFileSync(TINYSTORIES, 'utf8').slice(0, 200_000);
    for (const path of [MODEL, LLAMA2C_TOKENIZER]) {
      const tokenizer = await loadTokenizer(path);
      assert.equal(isHfTokenizer(tokenizer), path === MODEL);
      const before = textsTokenizedInThreads();
      const [inThread, here] = await Promise.all([perplexityIdsInThread(tokenizer, text), Promise.resolve(perplexityIds(tokenizer, text))]);
      assert.ok(inThread instanceof Int32Array);
      assert.ok(inThread.length > 10_000);
      assert.equal(inThread[0], tokenizer.bosId);
      assert.deepEqual(inThread, here, path);
      assert.equal(textsTokenizedInThreads() - before, path === MODEL ? 1 : 0, 'tokenized on a worker thread exactly when the tokenizer allows it');
    }
  });
});
