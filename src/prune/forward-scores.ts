// Member scores of the gradient-free importance kinds for a score stage: which projections to measure for the
// groups (an attention group is scored on its o_proj input channels, an MLP group on its down_proj input channels,
// as FLAP and Wanda-sp do; a layer group on its layers' block influence), one forward pass over the calibration
// batch (forward-stats.ts), then the formulas of forward-importance.ts. Only the measured member gets scores (the
// others are absent, as for `random`), so every `reduce` passes them through.
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../errors/lopper-error.js';
import type { LlamaModel } from '../model/llama.js';
import { columnStats, flapChannelScores, flapMetrics, wandaChannelScores, type ColumnStats, type FlapMetric } from './forward-importance.js';
import { forwardStatistics, type StatsRun } from './forward-stats.js';
import type { GroupMember, PruningGroup } from './groups.js';

export type ForwardKind = 'wanda' | 'flap' | 'block_influence';
export const FORWARD_KINDS: readonly ForwardKind[] = ['wanda', 'flap', 'block_influence'];

export function isForwardKind(kind: string): kind is ForwardKind {
  return (FORWARD_KINDS as readonly string[]).includes(kind);
}

export interface ForwardScores {
  /** Group id → member role → channel scores (layer groups: role of the root → one score per layer). */
  members: Map<string, Map<string, Float64Array>>;
  /** flap: group id → mean input of the measured projection (FLAP's baseline_inp), for bias compensation. */
  meanInputs: Map<string, Float64Array>;
}

/** The member whose input channels are measured: o_proj of an attention group, down_proj of an MLP group. */
export function measuredMember(group: PruningGroup): GroupMember {
  const role = group.kind === 'attention' ? 'o_proj' : 'down_proj';
  const m = group.members.find((x) => x.role === role);
  if (!m) throw new Error(`internal: group ${group.id} has no ${role} member`);
  return m;
}

/** The groups must be of the kinds the importance scores (LP4012). */
export function checkForwardGroups(kind: ForwardKind, groups: PruningGroup[], stage: string): void {
  const ok = kind === 'block_influence' ? (g: PruningGroup) => g.kind === 'layer' : (g: PruningGroup) => g.kind === 'attention' || g.kind === 'mlp';
  const bad = groups.find((g) => !ok(g));
  if (bad) {
    throw new LopperError('LP4012', `stage "${stage}": importance ${kind} scores ${kind === 'block_influence' ? 'whole decoder layers (group mode: layer)' : 'attention heads and MLP channels (group mode: block)'}, but group ${bad.id} is a ${bad.kind} group`, {
      hint: kind === 'block_influence' ? 'Use a group stage with mode: layer.' : 'Use a group stage with mode: block.',
    });
  }
}

/** Column reductions of a device weight: on the GPU as tensor ops (only [C] vectors come back), else on the host in float64. */
async function weightColumns(w: tf.Tensor): Promise<ColumnStats> {
  const [rows, cols] = w.shape as [number, number];
  if (tf.getBackend() !== 'webgpu') return columnStats((await w.data()) as Float32Array, rows, cols);
  const [a, s] = tf.tidy(() => [tf.mean(tf.abs(w), 0), tf.sum(tf.square(w), 0)]);
  try {
    return { absMean: Float64Array.from((await a!.data()) as Float32Array), sqSum: Float64Array.from((await s!.data()) as Float32Array) };
  } finally {
    a!.dispose();
    s!.dispose();
  }
}

export interface ForwardScoreRequest {
  kind: ForwardKind;
  /** flap only. */
  metric: FlapMetric;
  ids: Int32Array;
  samples: number;
  seqLen: number;
  stage: string;
}

export async function forwardScores(model: LlamaModel, groups: PruningGroup[], req: ForwardScoreRequest, run: StatsRun = {}): Promise<ForwardScores> {
  checkForwardGroups(req.kind, groups, req.stage);
  const out: ForwardScores = { members: new Map(), meanInputs: new Map() };
  if (req.kind === 'block_influence') {
    const stats = await forwardStatistics(model, req.ids, req.samples, req.seqLen, { linears: [], fluctuation: false, squares: false, blockInfluence: true }, run);
    for (const g of groups) out.members.set(g.id, new Map([[g.members[0]!.role, Float64Array.from(g.layerIds!, (l) => stats.blockInfluence![l]!)]]));
    return out;
  }
  const linearOf = (g: PruningGroup) => measuredMember(g).param.replace(/\.weight$/, '');
  const flap = req.kind === 'flap' ? flapMetrics[req.metric] : null;
  const stats = await forwardStatistics(model, req.ids, req.samples, req.seqLen, {
    linears: groups.map(linearOf), fluctuation: flap?.fluctuation ?? false, squares: flap ? flap.squares : true, blockInfluence: false,
  }, run);
  for (const g of groups) {
    const member = measuredMember(g);
    const s = stats.linear.get(linearOf(g))!;
    const [w] = model.variablesOf(member.param);
    const col = await weightColumns(w!);
    const scores = flap
      ? flapChannelScores(g.kind as 'attention' | 'mlp', req.metric, col, s, `${req.stage}: ${g.id}`)
      : wandaChannelScores(col, s);
    out.members.set(g.id, new Map([[member.role, scores]]));
    if (flap) out.meanInputs.set(g.id, s.mean);
  }
  return out;
}
