// Perplexity ids (BOS + the whole text encoded once, perplexityIds) computed on a worker thread, so that the
// evaluate stage scores zero-shot tasks on the GPU while the text is tokenized: on the H200 bench a 784 KB
// TinyStories file took 4.4 s of the main thread, during which no GPU work was queued. A tokenizer.json tokenizer is
// rebuilt in the thread from its files, the same construction as on the main thread (hfTokenizerFromBytes);
// others (llama2.c vocabularies) encode on the main thread.
import { Worker } from 'node:worker_threads';
import { isHfTokenizer } from '../model/tokenizer.js';
import type { Tokenizer } from '../model/types.js';
import { perplexityIds } from './perplexity.js';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { Tokenizer } = await import(workerData.module);
  const decode = (bytes) => JSON.parse(new TextDecoder().decode(bytes));
  const impl = new Tokenizer(decode(workerData.json), workerData.config ? decode(workerData.config) : {});
  const encoded = impl.encode(workerData.text, { add_special_tokens: false }).ids;
  const ids = new Int32Array(encoded.length + 1);
  ids[0] = workerData.bos;
  ids.set(encoded, 1);
  parentPort.postMessage({ ids }, [ids.buffer]);
})().catch((e) => parentPort.postMessage({ error: String((e && e.message) || e) }));
`;

let fromThreads = 0;
/** How many texts a worker thread has tokenized in this process (a thread that failed falls back silently). */
export function textsTokenizedInThreads(): number {
  return fromThreads;
}

/** perplexityIds(tokenizer, text), off the main thread where the tokenizer allows it. */
export function perplexityIdsInThread(tokenizer: Tokenizer, text: string): Promise<Int32Array> {
  const files = tokenizer.files();
  const json = files.get('tokenizer.json');
  if (!isHfTokenizer(tokenizer) || !json) return Promise.resolve().then(() => perplexityIds(tokenizer, text));
  return new Promise<Int32Array>((resolve) => {
    const onThisThread = () => resolve(perplexityIds(tokenizer, text));
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: import.meta.resolve('@huggingface/tokenizers'), json, config: files.get('tokenizer_config.json'), text, bos: tokenizer.bosId },
      });
    } catch {
      onThisThread();
      return;
    }
    // A thread that cannot start or fails gives the same ids computed here instead: slower, never different.
    worker.once('message', (msg: { ids?: Int32Array; error?: string }) => {
      void worker.terminate();
      if (msg.ids) {
        fromThreads++;
        resolve(msg.ids);
      }
      else onThisThread();
    });
    worker.once('error', () => onThisThread());
  });
}
