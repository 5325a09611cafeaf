// Shape arithmetic from a config alone: LLM-Pruner's LLaMA-7B numbers (reference/llm-pruner.md §3.3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readHfConfig, countParameters, isUniform } from '../../src/model/config.js';
import { buildGroups } from '../../src/prune/groups.js';
import { configAtRatio, keptCount, ratioForTarget, roundedKept } from '../../src/prune/shapes.js';

const llama7b = readHfConfig(JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/configs/llama-7b/config.json', import.meta.url)), 'utf8')));

test('LLaMA-7B, ratio 0.25 on layers [4, 30]: 24 heads, 8256 channels, 6,738,415,616 -> 5,422,977,024', () => {
  assert.equal(countParameters(llama7b), 6_738_415_616);
  const groups = buildGroups(llama7b, { mode: 'block', attention: [4, 30], mlp: [4, 30] });
  assert.equal(groups.length, 52);
  const after = configAtRatio(llama7b, groups, 0.25);
  after.layers.forEach((l, i) => {
    const pruned = i >= 4 && i < 30;
    assert.equal(l.numAttentionHeads, pruned ? 24 : 32, `layer ${i} heads`);
    assert.equal(l.numKeyValueHeads, pruned ? 24 : 32, `layer ${i} kv heads`);
    assert.equal(l.intermediateSize, pruned ? 8256 : 11008, `layer ${i} channels`);
  });
  assert.equal(countParameters(after), 5_422_977_024);
  assert.equal(isUniform(after), false);
});

test('keptCount floors units x (1 - ratio), immune to float noise', () => {
  assert.equal(keptCount(32, 0.25), 24);
  assert.equal(keptCount(11008, 0.25), 8256);
  assert.equal(keptCount(10, 0.9), 1); // 10 * (1 - 0.9) = 0.9999999999999998 in float64
  assert.equal(keptCount(4, 0.5), 2);
  assert.equal(keptCount(172, 0.25), 129);
  assert.equal(keptCount(4, 0.9), 0);
  assert.equal(roundedKept(129, 172, 8), 136);
  assert.equal(roundedKept(170, 172, 8), 172);
});

test('ratioForTarget finds the smallest ratio under a parameter budget', () => {
  const groups = buildGroups(llama7b, { mode: 'block', attention: [4, 30], mlp: [4, 30] });
  const at = (r: number) => countParameters(configAtRatio(llama7b, groups, r));
  const r = ratioForTarget(5_422_977_024, at)!;
  assert.ok(r > 0.2 && r <= 0.25, `ratio ${r}`);
  assert.equal(at(r), 5_422_977_024);
  assert.ok(at(r - 1e-6) > 5_422_977_024);
  assert.equal(ratioForTarget(10, at), null);
});

test('GQA groups map query head h to KV head h // n_rep', () => {
  const cfg = readHfConfig({ hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, tie_word_embeddings: true });
  const [attn, mlp] = buildGroups(cfg, { mode: 'block', attention: [1, 2], mlp: [1, 2] });
  assert.equal(attn!.units, 4);
  assert.equal(attn!.unitSize, 8);
  assert.deepEqual(attn!.members.map((m) => [m.role, m.axis, m.channels, m.repeat]),
    [['k_proj', 0, 32, 1], ['q_proj', 0, 64, 2], ['v_proj', 0, 32, 1], ['o_proj', 1, 64, 2]]);
  assert.deepEqual(mlp!.members.map((m) => m.role), ['gate_proj', 'up_proj', 'down_proj']);
  assert.throws(() => buildGroups(cfg, { mode: 'block', attention: [3, 6] }), /LP4001|not a range/);
});
