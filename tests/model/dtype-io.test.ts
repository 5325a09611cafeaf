// Model I/O in the checkpoint's dtype: 16-bit saves of stories260K that round-trip bit for bit, sharding laid
// out like save_pretrained, saving from a per-tensor async source, the streaming raw reader (read-ahead bound,
// concurrent pieces) and the LP30xx errors of corrupt shards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LopperError } from '../../src/errors/lopper-error.js';
import {
  bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16, hfCheckpointDtype, loadModel, rawToFloat32,
  readSafetensors, readSafetensorsHeader, saveModel, streamHfWeights, streamSafetensors, writeSafetensors,
  type HfDtype, type LoadedModel, type RawTensor, type TensorSource,
} from '../../src/model/index.js';
import { planShards } from '../../src/model/shards.js';
import { haveShared, paths } from './shared-paths.js';

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-dtype-io-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function assertSameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const x = bitsOf(a), y = bitsOf(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

const rounders: Record<'bfloat16' | 'float16', (a: Float32Array) => Float32Array> = {
  bfloat16: (a) => bf16ToFloat32(float32ToBf16(a)),
  float16: (a) => f16ToFloat32(float32ToF16(a)),
};

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`a ${dtype} copy of stories260K round-trips bit for bit`, async (t) => {
    if (!haveShared(t, 'hf')) return;
    await withTemp(async (root) => {
      const original = await loadModel(paths.hf);
      const first = join(root, 'a'), second = join(root, 'b');
      await saveModel(first, original, { dtype });
      const loaded = await loadModel(first);
      for (const [name, w] of original.weights) assertSameBits(loaded.weights.get(name)!.data, rounders[dtype](w.data), name);
      await saveModel(second, loaded, { dtype });
      const [a, b] = await Promise.all([readFile(join(first, 'model.safetensors')), readFile(join(second, 'model.safetensors'))]);
      assert.ok(a.equals(b), 'the second save is byte-identical to the first');
      const fileDtype = dtype === 'bfloat16' ? 'BF16' : 'F16';
      const header = await readSafetensorsHeader(join(first, 'model.safetensors'));
      assert.ok([...header.tensors.values()].every((e) => e.dtype === fileDtype));
      assert.deepEqual(header.metadata, { format: 'pt' });
      const config = JSON.parse(await readFile(join(first, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(config.torch_dtype, dtype);
      assert.equal(await hfCheckpointDtype(first), dtype);
      assert.equal(await hfCheckpointDtype(paths.hf), 'float32');
      // The 16-bit file is half the float32 one (same header size up to the dtype strings).
      const f32 = await readFile(join(paths.hf, 'model.safetensors'));
      assert.ok(Math.abs(a.byteLength - f32.byteLength / 2) < 20_000);
    });
  });
}

test('planShards follows huggingface_hub: in order, oversized tensors get their own shard at once', () => {
  const plan = planShards([
    { name: 'layer_1', bytes: 6 }, { name: 'layer_2', bytes: 10 }, { name: 'layer_3', bytes: 30 },
    { name: 'layer_4', bytes: 2 }, { name: 'layer_5', bytes: 2 },
  ], 10);
  assert.deepEqual(plan.shards, [
    { file: 'model-00001-of-00004.safetensors', names: ['layer_1'] },
    { file: 'model-00002-of-00004.safetensors', names: ['layer_3'] },
    { file: 'model-00003-of-00004.safetensors', names: ['layer_2'] },
    { file: 'model-00004-of-00004.safetensors', names: ['layer_4', 'layer_5'] },
  ]);
  assert.equal(plan.totalSize, 50);
  assert.deepEqual(planShards([{ name: 'a', bytes: 3 }, { name: 'b', bytes: 7 }], 10).shards, [{ file: 'model.safetensors', names: ['a', 'b'] }]);
});

/** Saves `model` sharded and checks the directory against save_pretrained's layout; returns the shard files. */
async function checkShardedSave(model: LoadedModel, dir: string, dtype: HfDtype, maxShardBytes: number): Promise<string[]> {
  await saveModel(dir, model, { dtype, maxShardBytes });
  const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
  assert.ok(files.length > 1, 'sharded');
  assert.ok(!files.includes('model.safetensors'));
  files.forEach((f, i) => assert.equal(f, `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.safetensors`));
  const indexText = await readFile(join(dir, 'model.safetensors.index.json'), 'utf8');
  const index = JSON.parse(indexText) as { metadata: { total_size: number }; weight_map: Record<string, string> };
  assert.deepEqual(Object.keys(index), ['metadata', 'weight_map']);
  assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort(), 'sort_keys=True, as save_pretrained');
  let total = 0;
  const seen = new Map<string, string>();
  for (const file of files) {
    const header = await readSafetensorsHeader(join(dir, file));
    let shardBytes = 0;
    for (const [name, e] of header.tensors) {
      assert.ok(!seen.has(name), `${name} in one shard only`);
      seen.set(name, file);
      assert.equal(index.weight_map[name], file, name);
      shardBytes += e.end - e.begin;
    }
    assert.ok(shardBytes <= maxShardBytes || header.tensors.size === 1, `${file}: ${shardBytes} bytes`);
    total += shardBytes;
  }
  assert.equal(seen.size, model.weights.size);
  assert.equal(Object.keys(index.weight_map).length, model.weights.size);
  assert.equal(index.metadata.total_size, total);
  return files;
}

test('sharded saves: save_pretrained names, index and weight_map; loading gives the unsharded weights', async (t) => {
  if (!haveShared(t, 'hf')) return;
  await withTemp(async (root) => {
    const original = await loadModel(paths.hf);
    await checkShardedSave(original, join(root, 'f32'), 'float32', 200_000);
    const back = await loadModel(join(root, 'f32'));
    assert.deepEqual([...back.weights.keys()], [...original.weights.keys()]);
    for (const [name, w] of original.weights) assertSameBits(back.weights.get(name)!.data, w.data, name);
    // 100 kB is below the 128 KiB float32 embedding: it gets a shard of its own.
    const small = await checkShardedSave(original, join(root, 'small'), 'float32', 100_000);
    const embed = await readSafetensorsHeader(join(root, 'small', small[0]!));
    assert.deepEqual([...embed.tensors.keys()], ['model.embed_tokens.weight']);
    // bf16 sharded equals bf16 unsharded.
    await saveModel(join(root, 'bf16'), original, { dtype: 'bfloat16' });
    await checkShardedSave(original, join(root, 'bf16-sharded'), 'bfloat16', 60_000);
    const [one, many] = await Promise.all([loadModel(join(root, 'bf16')), loadModel(join(root, 'bf16-sharded'))]);
    for (const [name, w] of one.weights) assertSameBits(many.weights.get(name)!.data, w.data, name);
    assert.equal(await hfCheckpointDtype(join(root, 'bf16-sharded')), 'bfloat16');
  });
});

test('saveModel from a per-tensor async source: one read at a time, same bytes as from the WeightMap', async (t) => {
  if (!haveShared(t, 'hf')) return;
  await withTemp(async (root) => {
    const m = await loadModel(paths.hf);
    let outstanding = 0, most = 0, reads = 0;
    const shapes = new Map([...m.weights].map(([n, w]) => [n, w.shape]));
    // Half the tensors arrive already as bf16 bits (as a GPU would download them), half as float32.
    const source: TensorSource = {
      shapes,
      read: async (name) => {
        outstanding++; reads++; most = Math.max(most, outstanding);
        await new Promise((r) => setTimeout(r, 1));
        outstanding--;
        const w = m.weights.get(name)!;
        if (reads % 2 === 0) return { shape: w.shape, data: w.data };
        const bits = float32ToBf16(w.data);
        return { dtype: 'BF16', shape: w.shape, bytes: new Uint8Array(bits.buffer) };
      },
    };
    await saveModel(join(root, 'src'), { config: m.config, weights: source, tokenizer: m.tokenizer }, { dtype: 'bfloat16', maxShardBytes: 300_000 });
    await saveModel(join(root, 'map'), m, { dtype: 'bfloat16', maxShardBytes: 300_000 });
    assert.equal(most, 1);
    assert.equal(reads, m.weights.size);
    const files = (await readdir(join(root, 'map'))).sort();
    assert.deepEqual((await readdir(join(root, 'src'))).sort(), files);
    for (const f of files) assert.ok((await readFile(join(root, 'src', f))).equals(await readFile(join(root, 'map', f))), f);
    // A source missing a parameter fails before anything is written, with the checkWeights code.
    const missing = new Map(shapes);
    missing.delete('model.norm.weight');
    await assert.rejects(saveModel(join(root, 'bad'), { config: m.config, weights: { shapes: missing, read: source.read }, tokenizer: null }),
      (e: unknown) => e instanceof LopperError && e.code === 'LP3009' && e.message.includes('model.norm.weight'));
  });
});

/** Counts bytes requested by FileHandle.read, and reads at once, while `fn` runs (every handle shares one prototype). */
async function countingReads<T>(fn: (requested: () => number, mostAtOnce: () => number) => Promise<T>): Promise<T> {
  const { open } = await import('node:fs/promises');
  const probe = await open(paths.hf + '/config.json', 'r');
  const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
  await probe.close();
  const original = proto.read;
  let requested = 0, atOnce = 0, most = 0;
  proto.read = function (this: unknown, ...args: unknown[]) {
    requested += typeof args[2] === 'number' ? args[2] : 0;
    most = Math.max(most, ++atOnce);
    return original.apply(this, args).finally(() => { atOnce--; });
  };
  try {
    return await fn(() => requested, () => most);
  } finally {
    proto.read = original;
  }
}

test('streamSafetensors delivers the file bytes, bounds the read-ahead, and reads pieces concurrently', async (t) => {
  if (!haveShared(t, 'hf')) return;
  const file = join(paths.hf, 'model.safetensors');
  const bytes = new Uint8Array(await readFile(file));
  const header = await readSafetensorsHeader(file);
  const expectBytes = (name: string, raw: RawTensor) => {
    const e = header.tensors.get(name)!;
    assert.equal(raw.dtype, e.dtype);
    assert.deepEqual(raw.shape, e.shape);
    assert.ok(Buffer.from(raw.bytes).equals(Buffer.from(bytes.subarray(e.begin, e.end))), name);
  };
  for (const budget of [1, 50_000, 1 << 30]) {
    await countingReads(async (requested, mostAtOnce) => {
      // The header reads: the 8-byte length and the JSON, i.e. everything before the first tensor.
      const headerBytes = requested() + Math.min(...[...header.tensors.values()].map((e) => e.begin));
      let delivered = 0, count = 0, busy = false;
      await streamSafetensors(file, {
        maxBytesInFlight: budget,
        readPieceBytes: 4096,
        onTensor: async (name, raw) => {
          assert.ok(!busy, 'one onTensor at a time');
          busy = true;
          expectBytes(name, raw);
          delivered += raw.bytes.byteLength;
          count++;
          // Read-ahead beyond the tensor being consumed stays within the budget (after the header reads).
          const ahead = requested() - headerBytes - delivered;
          assert.ok(ahead >= 0 && (ahead <= budget || budget === 1 && ahead === 0), `budget ${budget}: ${ahead} bytes ahead`);
          await new Promise((r) => setTimeout(r, 1));
          busy = false;
        },
      });
      assert.equal(count, header.tensors.size);
      // 4096-byte pieces of the 128 KiB embedding keep the default four reads in flight, never more.
      assert.equal(mostAtOnce(), 4, `budget ${budget}: at most ${mostAtOnce()} reads at once`);
    });
  }
  // A filter skips tensors without reading them.
  const seen: string[] = [];
  await streamSafetensors(file, { filter: (n) => n.endsWith('norm.weight'), onTensor: (n) => { seen.push(n); } });
  assert.deepEqual(seen.sort(), [...header.tensors.keys()].filter((n) => n.endsWith('norm.weight')).sort());
});

test('streamHfWeights streams every parameter raw; corrupt shards fail with their LP30xx before any data', async (t) => {
  if (!haveShared(t, 'hf')) return;
  await withTemp(async (root) => {
    const m = await loadModel(paths.hf);
    const dir = join(root, 'm');
    await saveModel(dir, m, { dtype: 'bfloat16', maxShardBytes: 100_000 });
    const got = new Map<string, RawTensor>();
    await streamHfWeights(dir, m.config, async (name, raw) => { got.set(name, raw); }, { maxBytesInFlight: 10_000 });
    assert.equal(got.size, m.weights.size);
    for (const [name, w] of m.weights) {
      assert.equal(got.get(name)!.dtype, 'BF16');
      assertSameBits(rawToFloat32(got.get(name)!), rounders.bfloat16(w.data), name);
    }
    const shards = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
    const last = join(dir, shards[shards.length - 1]!);
    const lastBytes = await readFile(last);
    // A dtype the loader refuses, in the last shard: LP3007 naming it, and no tensor delivered first.
    const n = Number(lastBytes.readBigUInt64LE(0));
    const h = JSON.parse(lastBytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string }>;
    const victim = Object.keys(h).find((k) => k !== '__metadata__')!;
    h[victim]!.dtype = 'I16';
    const json = Buffer.from(JSON.stringify(h).padEnd(n, ' '));
    assert.equal(json.byteLength, n);
    await writeFile(last, Buffer.concat([lastBytes.subarray(0, 8), json, lastBytes.subarray(8 + n)]));
    let delivered = 0;
    await assert.rejects(streamHfWeights(dir, m.config, () => { delivered++; }),
      (e: unknown) => e instanceof LopperError && e.code === 'LP3007' && e.message.includes(shards[shards.length - 1]!) && e.message.includes(victim));
    assert.equal(delivered, 0);
    // A truncated shard: LP3004 naming the shard, from loadModel and from the stream.
    await writeFile(last, lastBytes);
    await truncate(last, lastBytes.byteLength - 100);
    for (const run of [() => loadModel(dir), () => streamHfWeights(dir, m.config, () => { delivered++; })]) {
      await assert.rejects(run(), (e: unknown) => e instanceof LopperError && e.code === 'LP3004' && e.message.includes(shards[shards.length - 1]!));
    }
    assert.equal(delivered, 0);
  });
});

test('writeSafetensors: F16/BF16 from float32, I32, 16-bit pass-through, shape checks', async () => {
  await withTemp(async (root) => {
    const p = join(root, 'x.safetensors');
    const values = new Float32Array([1, -2, 0.1, 65520, 3e-8]);
    const bf = float32ToBf16(values);
    await writeSafetensors(p, new Map([
      ['half', { shape: [5], data: values, dtype: 'F16' as const }],
      ['brain', { shape: [5], data: values }],
      ['ints', { shape: [2], data: new Int32Array([7, -9]) }],
      ['raw', { shape: [5], dtype: 'BF16' as const, bytes: new Uint8Array(bf.buffer) }],
    ]), { format: 'pt' }, { floatDtype: 'BF16', maxBytesInFlight: 8, maxWritesInFlight: 2 });
    const header = await readSafetensorsHeader(p);
    assert.deepEqual([...header.tensors].map(([n, e]) => `${n}:${e.dtype}`), ['half:F16', 'brain:BF16', 'ints:I32', 'raw:BF16']);
    const raw = await readFile(p);
    assert.equal((8 + Number(raw.readBigUInt64LE(0))) % 8, 0, 'header padded to 8 bytes');
    const m = await readSafetensors(p);
    assertSameBits(m.get('half')!.data as Float32Array, f16ToFloat32(float32ToF16(values)), 'half');
    assert.deepEqual([...m.get('half')!.data].slice(3), [Infinity, 2 ** -24], '65520 overflows to Inf; 3e-8 rounds up to the smallest subnormal');
    assertSameBits(m.get('brain')!.data as Float32Array, bf16ToFloat32(bf), 'brain');
    assertSameBits(m.get('raw')!.data as Float32Array, bf16ToFloat32(bf), 'raw');
    assert.deepEqual([...m.get('ints')!.data], [7, -9]);
    await assert.rejects(writeSafetensors(p, new Map([['bad', { shape: [3], data: new Float32Array(2) }]])),
      (e: unknown) => e instanceof LopperError && e.code === 'LP3016' && e.message.includes('bad'));
  });
});

test('rawToFloat32 handles unaligned bytes and F64', () => {
  const buf = new Uint8Array(9);
  new DataView(buf.buffer).setFloat32(1, 1.5, true);
  new DataView(buf.buffer).setFloat32(5, -3, true);
  assert.deepEqual([...rawToFloat32({ dtype: 'F32', shape: [2], bytes: buf.subarray(1) })], [1.5, -3]);
  const f64 = new Float64Array([0.1, 2]);
  assert.deepEqual([...rawToFloat32({ dtype: 'F64', shape: [2], bytes: new Uint8Array(f64.buffer) })], [Math.fround(0.1), 2]);
  assert.throws(() => rawToFloat32({ dtype: 'I32', shape: [1], bytes: new Uint8Array(4) }), (e: unknown) => e instanceof LopperError && e.code === 'LP3007');
});
