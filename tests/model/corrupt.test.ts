// A corpus of corrupt or mismatched model files, generated from the real stories260K copies into a temp dir:
// each must fail with its LopperError code and a message naming the file (and tensor), never crash, hang or
// allocate from a lying size field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LopperError } from '../../src/errors/lopper-error.js';
import { loadModel, loadTokenizer, readSafetensors, requireTokenizer } from '../../src/model/index.js';
import { haveShared, paths } from './shared-paths.js';

interface Header { [name: string]: { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string> }

function splitSafetensors(bytes: Uint8Array): { header: Header; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Header, data: bytes.subarray(8 + n) };
}

function joinSafetensors(header: unknown, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

type Case = { name: string; code: string; mentions: string[]; make: (dir: string) => Promise<() => Promise<unknown>> };

const Q = 'model.layers.0.self_attn.q_proj.weight';
const Q1 = 'model.layers.1.self_attn.q_proj.weight';

/** Copies the HF model into `dir`, lets `edit` rewrite model.safetensors, returns a loader. */
function hfCase(edit: (st: { header: Header; data: Uint8Array }, raw: Uint8Array) => Uint8Array, configEdit?: (c: Record<string, unknown>) => void) {
  return async (dir: string) => {
    await mkdir(dir, { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(join(paths.hf, f), join(dir, f));
    const raw = new Uint8Array(await readFile(join(paths.hf, 'model.safetensors')));
    await writeFile(join(dir, 'model.safetensors'), edit(splitSafetensors(raw), raw));
    if (configEdit) {
      const c = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      configEdit(c);
      await writeFile(join(dir, 'config.json'), JSON.stringify(c));
    }
    return () => loadModel(dir);
  };
}

const entry = (h: Header, name: string) => h[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };

const cases: Case[] = [
  { name: 'truncated safetensors', code: 'LP3004', mentions: ['model.safetensors', 'truncated'],
    make: hfCase((_st, raw) => raw.subarray(0, raw.length - 5000)) },
  { name: 'header length of terabytes', code: 'LP3005', mentions: ['model.safetensors', 'header length'],
    make: hfCase(({ header, data }) => joinSafetensors(header, data, 4n * 1024n ** 4n)) },
  { name: 'header length past the end of a small file', code: 'LP3004', mentions: ['model.safetensors'],
    make: hfCase(({ header, data }) => joinSafetensors(header, data.subarray(0, 10), 50_000_000n)) },
  { name: 'file shorter than the length field', code: 'LP3004', mentions: ['model.safetensors'],
    make: hfCase(() => new Uint8Array([1, 2, 3])) },
  { name: 'header is not JSON', code: 'LP3005', mentions: ['model.safetensors', 'JSON'],
    make: hfCase(({ data }) => { const h = new TextEncoder().encode('{"a": [1, 2'); const o = new Uint8Array(8 + h.length + data.length); new DataView(o.buffer).setBigUint64(0, BigInt(h.length), true); o.set(h, 8); o.set(data, 8 + h.length); return o; }) },
  { name: 'offsets that disagree with the shape', code: 'LP3006', mentions: ['model.safetensors', Q],
    make: hfCase(({ header, data }) => { entry(header, Q).data_offsets[1] -= 4; return joinSafetensors(header, data); }) },
  { name: 'offsets that point past the data', code: 'LP3006', mentions: ['model.safetensors', Q],
    make: hfCase(({ header, data }) => { const e = entry(header, Q); const n = e.data_offsets[1] - e.data_offsets[0]; e.data_offsets = [data.length + 1000, data.length + 1000 + n]; return joinSafetensors(header, data); }) },
  { name: 'overlapping tensors', code: 'LP3006', mentions: ['model.safetensors', 'overlap'],
    make: hfCase(({ header, data }) => { const a = entry(header, Q), b = entry(header, Q1); b.data_offsets = [a.data_offsets[0], a.data_offsets[1]]; return joinSafetensors(header, data); }) },
  { name: 'unknown dtype', code: 'LP3007', mentions: ['model.safetensors', Q, 'Q4'],
    make: hfCase(({ header, data }) => { entry(header, Q).dtype = 'Q4'; return joinSafetensors(header, data); }) },
  { name: 'integer weights', code: 'LP3007', mentions: ['model.safetensors', Q, 'I32'],
    make: hfCase(({ header, data }) => { entry(header, Q).dtype = 'I32'; return joinSafetensors(header, data); }) },
  { name: 'shape that does not match config.json', code: 'LP3008', mentions: ['model.safetensors', 'model.layers.0.mlp.down_proj.weight', '[64,172]', '[64,128]'],
    make: hfCase(({ data }, raw) => new Uint8Array(raw), (c) => { c.intermediate_size = 128; }) },
  { name: 'missing tensor', code: 'LP3009', mentions: ['model.safetensors', 'model.norm.weight'],
    make: hfCase(({ header, data }) => { delete header['model.norm.weight']; return joinSafetensors(header, data); }) },
  { name: 'tensor the config does not describe (fewer layers in config.json)', code: 'LP3010', mentions: ['model.safetensors', 'model.layers.4'],
    make: hfCase((_st, raw) => new Uint8Array(raw), (c) => { c.num_hidden_layers = 4; }) },
  { name: 'config.json is not JSON', code: 'LP3003', mentions: ['config.json'],
    make: async (dir) => { await hfCase((_s, r) => r)(dir); await writeFile(join(dir, 'config.json'), '{"hidden_size": 64,'); return () => loadModel(dir); } },
  { name: 'unsupported model_type', code: 'LP3003', mentions: ['config.json', 'gpt2'],
    make: hfCase((_s, r) => r, (c) => { c.model_type = 'gpt2'; }) },
  { name: 'heads not a multiple of kv heads', code: 'LP3003', mentions: ['config.json', 'layer 1'],
    make: hfCase((_s, r) => r, (c) => { c.num_attention_heads_per_layer = [8, 6, 8, 8, 8]; }) },
  { name: 'per-layer list of the wrong length', code: 'LP3003', mentions: ['config.json', 'intermediate_size_per_layer'],
    make: hfCase((_s, r) => r, (c) => { c.intermediate_size_per_layer = [172, 172]; }) },
  { name: 'shard index naming a missing shard', code: 'LP3013', mentions: ['model.safetensors.index.json', 'model-00002-of-00002.safetensors'],
    make: async (dir) => {
      await hfCase((_s, r) => r)(dir);
      await rm(join(dir, 'model.safetensors'));
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { [Q]: 'model-00001-of-00002.safetensors', [Q1]: 'model-00002-of-00002.safetensors' } }));
      await copyFile(join(paths.hf, 'model.safetensors'), join(dir, 'model-00001-of-00002.safetensors'));
      return () => loadModel(dir);
    } },
  { name: 'model path that does not exist', code: 'LP3001', mentions: ['no-such-model'],
    make: async (dir) => () => loadModel(join(dir, 'no-such-model')) },
  { name: 'tokenizer named but missing', code: 'LP3011', mentions: ['nope.json'],
    make: async (dir) => { await hfCase((_s, r) => r)(dir); return () => loadModel(dir, { tokenizer: join(dir, 'nope.json') }); } },
  { name: 'model without a tokenizer, when one is required', code: 'LP3011', mentions: ['no tokenizer'],
    make: async (dir) => { await hfCase((_s, r) => r)(dir); await rm(join(dir, 'tokenizer.json')); return async () => requireTokenizer(await loadModel(dir)); } },
  { name: 'tokenizer.json that is not JSON', code: 'LP3012', mentions: ['tokenizer.json'],
    make: async (dir) => { await hfCase((_s, r) => r)(dir); await writeFile(join(dir, 'tokenizer.json'), '{"model": '); return () => loadModel(dir); } },
  { name: 'truncated llama2.c checkpoint', code: 'LP3014', mentions: ['stories260K.bin', 'truncated'],
    make: async (dir) => { const p = join(dir, 'stories260K.bin'); await writeFile(p, (await readFile(paths.llama2c)).subarray(0, 500_000)); return () => loadModel(p); } },
  { name: 'llama2.c header with absurd sizes', code: 'LP3014', mentions: ['m.bin', 'implausible'],
    make: async (dir) => { const p = join(dir, 'm.bin'); const b = new Uint8Array(await readFile(paths.llama2c)); new DataView(b.buffer).setInt32(0, 2_000_000_000, true); await writeFile(p, b); return () => loadModel(p); } },
  { name: 'truncated llama2.c tokenizer', code: 'LP3012', mentions: ['tok512.bin'],
    make: async (dir) => { const p = join(dir, 'tok512.bin'); await writeFile(p, (await readFile(paths.tok512)).subarray(0, 3001)); return () => loadTokenizer(p); } },
  { name: 'truncated GGUF', code: 'LP3015', mentions: ['m.gguf'],
    make: async (dir) => { const p = join(dir, 'm.gguf'); await writeFile(p, (await readFile(paths.gguf)).subarray(0, 900_000)); return () => loadModel(p); } },
  { name: 'GGUF with a metadata count of 2^60', code: 'LP3015', mentions: ['m.gguf', 'cannot fit'],
    make: async (dir) => { const p = join(dir, 'm.gguf'); const b = new Uint8Array(await readFile(paths.gguf)); new DataView(b.buffer).setBigUint64(16, 1n << 60n, true); await writeFile(p, b); return () => loadModel(p); } },
  { name: 'GGUF with a quantized tensor type', code: 'LP3015', mentions: ['m.gguf', 'blk.0.attn_q.weight', 'ggml type 2'],
    make: async (dir) => {
      const p = join(dir, 'm.gguf');
      const b = new Uint8Array(await readFile(paths.gguf));
      // Find the tensor-info record of blk.0.attn_q.weight: name, n_dims u32, dims u64 × n, type u32.
      const name = new TextEncoder().encode('blk.0.attn_q.weight');
      let at = -1;
      for (let i = 0; i < b.length - name.length && at < 0; i++) if (b[i] === name[0] && name.every((c, j) => b[i + j] === c) && b[i - 8] === name.length) at = i;
      const dv = new DataView(b.buffer);
      const nd = dv.getUint32(at + name.length, true);
      dv.setUint32(at + name.length + 4 + 8 * nd, 2, true);
      await writeFile(p, b);
      return () => loadModel(p);
    } },
  { name: 'not a model at all', code: 'LP3002', mentions: ['notes.txt'],
    make: async (dir) => { const p = join(dir, 'notes.txt'); await writeFile(p, 'hello'); return () => loadModel(p); } },
];

test(`corrupt model corpus (${cases.length} files): each fails with its LopperError`, async (t) => {
  if (!haveShared(t, 'hf', 'llama2c', 'tok512', 'gguf')) return;
  const root = await mkdtemp(join(tmpdir(), 'lopper-corrupt-'));
  try {
    let i = 0;
    for (const c of cases) {
      await t.test(c.name, async () => {
        const dir = join(root, String(i++));
        await mkdir(dir, { recursive: true });
        const run = await c.make(dir);
        const before = process.memoryUsage().rss;
        await assert.rejects(run(), (e: unknown) => {
          assert.ok(e instanceof LopperError, `expected a LopperError, got ${String(e)}`);
          assert.equal(e.code, c.code, e.message);
          for (const m of c.mentions) assert.ok(e.message.includes(m), `message should mention ${m}: ${e.message}`);
          return true;
        });
        assert.ok(process.memoryUsage().rss - before < 200 * 1024 * 1024, 'no giant allocation');
      });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('f16 and bf16 safetensors convert exactly to float32', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lopper-f16-'));
  try {
    // 1, -2, 0.5, 65504 (max half), 2^-24 (smallest subnormal), -0 ; bf16 1, -2, 3.140625
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000]);
    const bf16 = new Uint16Array([0x3f80, 0xc000, 0x4049]);
    const i64 = new BigInt64Array([5n, -7n]);
    const data = new Uint8Array(12 + 6 + 16);
    data.set(new Uint8Array(f16.buffer), 0);
    data.set(new Uint8Array(bf16.buffer), 12);
    data.set(new Uint8Array(i64.buffer), 18);
    const header = { a: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] }, b: { dtype: 'BF16', shape: [3], data_offsets: [12, 18] }, c: { dtype: 'I64', shape: [2], data_offsets: [18, 34] } };
    const p = join(root, 'x.safetensors');
    await writeFile(p, joinSafetensors(header, data));
    const m = await readSafetensors(p);
    assert.deepEqual([...m.get('a')!.data], [1, -2, 0.5, 65504, 2 ** -24, -0]);
    assert.deepEqual(m.get('a')!.shape, [2, 3]);
    assert.deepEqual([...m.get('b')!.data], [1, -2, 3.140625]);
    assert.ok(m.get('c')!.data instanceof Int32Array);
    assert.deepEqual([...m.get('c')!.data], [5, -7]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
