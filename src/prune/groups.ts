// Which weights move together (Torch-Pruning's "group"). LLM-Pruner traces autograd to find them; for LLaMA they
// are fixed, so they are declared here from the model's shapes alone (no hard-coded sizes: a pruned model, whose
// layers differ in width, is grouped from its own per-layer widths and can be pruned again).
//
// A group has `units` prunable units (KV groups, MLP channels, hidden channels, decoder layers). Each member is one
// parameter sliced along one axis; its channels map onto the group's *aligned* channel space of `units * unitSize`
// channels by
//     aligned(c) = floor(c / (unitSize * repeat)) * unitSize + c mod unitSize,     unit(a) = floor(a / unitSize).
// For an attention group unitSize = head_dim; k/v rows have repeat 1 (channel kv*d + j is aligned channel kv*d + j);
// q rows and o_proj columns have repeat n_rep, so q channel h*d + j lands on aligned channel (h // n_rep)*d + j:
// query head h belongs to KV head h // n_rep (DESIGN.md). This is the explicit head → KV-group map; LLM-Pruner's
// llama3.py instead folds q channel c onto kv channel c mod (kv*d) (reference §1.4), which we deliberately do not copy.
import { LopperError } from '../errors/lopper-error.js';
import type { LlamaConfig } from '../model/types.js';

export type GroupMode = 'block' | 'channel' | 'layer';
export type GroupKind = 'attention' | 'mlp' | 'hidden' | 'layer';

export interface GroupMember {
  /** Short role name, unique in the group: `q_proj`, `down_proj`, `layers.3.input_layernorm`, ... */
  role: string;
  /** Hugging Face parameter name; in layer mode a template with `{layer}`. */
  param: string;
  /** 0 = rows (out-channels, or the elements of a 1-D tensor), 1 = columns (in-channels), null = whole tensor. */
  axis: 0 | 1 | null;
  /** Length of the member's channel-score vector. */
  channels: number;
  /** Channels per aligned channel (see the file comment); 1 except q_proj / o_proj under GQA. */
  repeat: number;
}

export interface PruningGroup {
  /** `layers.3.attention`, `layers.3.mlp`, `hidden`, `decoder_layers`. */
  id: string;
  kind: GroupKind;
  /** Decoder layer of a block-mode group. */
  layer?: number;
  units: number;
  /** Aligned channels per unit: head_dim for attention, 1 otherwise. */
  unitSize: number;
  /** What one unit is, for people: `kv_group`, `channel`, `layer`. */
  unit: string;
  /** Layer mode: unit i is decoder layer layerIds[i]. */
  layerIds?: number[];
  /** Execution order; members[0] is the root (reduce `first`), the last one executes last (reduce `last`). */
  members: GroupMember[];
}

export type LayerRange = [number, number];

export interface GroupSpec {
  mode: GroupMode;
  /** Block mode: layers whose attention / MLP is pruned, end-exclusive; absent = not pruned. */
  attention?: LayerRange;
  mlp?: LayerRange;
  /** Channel mode: layers whose members are scored (the hidden dimension is always pruned everywhere);
   *  layer mode: layers that may be removed. Absent = every layer. */
  layers?: LayerRange;
}

export function checkRange(range: LayerRange, numLayers: number, what: string): void {
  const [start, end] = range;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > numLayers || start >= end) {
    throw new LopperError('LP4001', `${what} layers [${start}, ${end}] are not a range of this model's ${numLayers} decoder layers`, {
      hint: `Ranges are [start, end], end-exclusive, with 0 <= start < end <= ${numLayers}.`,
    });
  }
}

function rangeList([start, end]: LayerRange): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

const attn = (i: number, p: string) => `model.layers.${i}.self_attn.${p}.weight`;
const mlpName = (i: number, p: string) => `model.layers.${i}.mlp.${p}.weight`;

/** Attention group of layer i: the unit is one KV head with its n_rep query heads. Root: q_proj for MHA
 *  (hf_prune.py), k_proj under GQA (llama3.py) — each is the root LLM-Pruner uses for that case. */
export function attentionGroup(config: LlamaConfig, i: number): PruningGroup {
  const { numAttentionHeads: heads, numKeyValueHeads: kv } = config.layers[i]!;
  const d = config.headDim;
  if (kv < 1 || heads % kv !== 0) {
    throw new LopperError('LP4002', `layer ${i} has ${heads} query heads and ${kv} KV heads; query heads must be a multiple of KV heads`);
  }
  const nRep = heads / kv;
  const q: GroupMember = { role: 'q_proj', param: attn(i, 'q_proj'), axis: 0, channels: heads * d, repeat: nRep };
  const k: GroupMember = { role: 'k_proj', param: attn(i, 'k_proj'), axis: 0, channels: kv * d, repeat: 1 };
  const v: GroupMember = { role: 'v_proj', param: attn(i, 'v_proj'), axis: 0, channels: kv * d, repeat: 1 };
  const o: GroupMember = { role: 'o_proj', param: attn(i, 'o_proj'), axis: 1, channels: heads * d, repeat: nRep };
  return {
    id: `layers.${i}.attention`, kind: 'attention', layer: i, units: kv, unitSize: d, unit: 'kv_group',
    members: nRep === 1 ? [q, k, v, o] : [k, q, v, o],
  };
}

/** MLP group of layer i: the unit is one intermediate channel; root gate_proj, last down_proj. */
export function mlpGroup(config: LlamaConfig, i: number): PruningGroup {
  const n = config.layers[i]!.intermediateSize;
  return {
    id: `layers.${i}.mlp`, kind: 'mlp', layer: i, units: n, unitSize: 1, unit: 'channel',
    members: [
      { role: 'gate_proj', param: mlpName(i, 'gate_proj'), axis: 0, channels: n, repeat: 1 },
      { role: 'up_proj', param: mlpName(i, 'up_proj'), axis: 0, channels: n, repeat: 1 },
      { role: 'down_proj', param: mlpName(i, 'down_proj'), axis: 1, channels: n, repeat: 1 },
    ],
  };
}

/** The hidden dimension (LLM-Pruner --channel_wise): the residual stream couples the embeddings, every norm, every
 *  projection's hidden side and the LM head into one group. Members in execution order; `scored` restricts which
 *  decoder layers' members contribute to the score (pruning always slices every one of them). */
export function hiddenGroup(config: LlamaConfig, scored: LayerRange): PruningGroup {
  const h = config.hiddenSize;
  const m = (role: string, param: string, axis: 0 | 1): GroupMember => ({ role, param, axis, channels: h, repeat: 1 });
  const members: GroupMember[] = [m('embed_tokens', 'model.embed_tokens.weight', 1)];
  for (const i of rangeList(scored)) {
    const p = `model.layers.${i}`;
    members.push(
      m(`layers.${i}.input_layernorm`, `${p}.input_layernorm.weight`, 0),
      m(`layers.${i}.q_proj`, attn(i, 'q_proj'), 1),
      m(`layers.${i}.k_proj`, attn(i, 'k_proj'), 1),
      m(`layers.${i}.v_proj`, attn(i, 'v_proj'), 1),
      m(`layers.${i}.o_proj`, attn(i, 'o_proj'), 0),
      m(`layers.${i}.post_attention_layernorm`, `${p}.post_attention_layernorm.weight`, 0),
      m(`layers.${i}.gate_proj`, mlpName(i, 'gate_proj'), 1),
      m(`layers.${i}.up_proj`, mlpName(i, 'up_proj'), 1),
      m(`layers.${i}.down_proj`, mlpName(i, 'down_proj'), 0),
    );
  }
  members.push(m('norm', 'model.norm.weight', 0));
  // Tied embeddings: lm_head is embed_tokens, whose gradient already carries both uses.
  if (!config.tieWordEmbeddings) members.push(m('lm_head', 'lm_head.weight', 1));
  return { id: 'hidden', kind: 'hidden', units: h, unitSize: 1, unit: 'channel', members };
}

/** Whole decoder layers: unit i = layer layerIds[i]; each member is one parameter role scored over its whole tensor. */
export function layerGroup(range: LayerRange): PruningGroup {
  const layerIds = rangeList(range);
  const roles: Array<[string, string]> = [
    ['input_layernorm', 'input_layernorm'], ['q_proj', 'self_attn.q_proj'], ['k_proj', 'self_attn.k_proj'],
    ['v_proj', 'self_attn.v_proj'], ['o_proj', 'self_attn.o_proj'], ['post_attention_layernorm', 'post_attention_layernorm'],
    ['gate_proj', 'mlp.gate_proj'], ['up_proj', 'mlp.up_proj'], ['down_proj', 'mlp.down_proj'],
  ].map(([role, path]) => [role!, `model.layers.{layer}.${path}.weight`]);
  return {
    id: 'decoder_layers', kind: 'layer', units: layerIds.length, unitSize: 1, unit: 'layer', layerIds,
    members: roles.map(([role, param]) => ({ role, param, axis: null, channels: layerIds.length, repeat: 1 })),
  };
}

/** Every group a `group` stage declares for `spec` on a model of this config. */
export function buildGroups(config: LlamaConfig, spec: GroupSpec): PruningGroup[] {
  const n = config.numHiddenLayers;
  if (spec.mode === 'block') {
    if (!spec.attention && !spec.mlp) {
      throw new LopperError('LP4003', 'a block-mode group stage needs `attention.layers` and/or `mlp.layers`', {
        hint: 'e.g. attention: { layers: [4, 30] }, mlp: { layers: [4, 30] }',
      });
    }
    if (spec.attention) checkRange(spec.attention, n, 'attention');
    if (spec.mlp) checkRange(spec.mlp, n, 'mlp');
    const groups: PruningGroup[] = [];
    for (let i = 0; i < n; i++) {
      if (spec.attention && i >= spec.attention[0] && i < spec.attention[1]) groups.push(attentionGroup(config, i));
      if (spec.mlp && i >= spec.mlp[0] && i < spec.mlp[1]) groups.push(mlpGroup(config, i));
    }
    return groups;
  }
  const range = spec.layers ?? [0, n];
  checkRange(range, n, spec.mode);
  return spec.mode === 'channel' ? [hiddenGroup(config, range)] : [layerGroup(range)];
}

/** Parameter name of a member for unit `u` (layer mode substitutes the layer id). */
export function memberParam(group: PruningGroup, member: GroupMember, unit?: number): string {
  if (group.layerIds && unit !== undefined) return member.param.replace('{layer}', String(group.layerIds[unit]));
  return member.param;
}

/** Aligned channel of member channel c (see the file comment). */
export function alignedChannel(c: number, unitSize: number, repeat: number): number {
  return Math.floor(c / (unitSize * repeat)) * unitSize + (c % unitSize);
}
