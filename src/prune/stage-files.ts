// The files the pruning stages hand each other (docs/recipe-fields.md): group → groups.json, score →
// scores.safetensors + scores.json, aggregate → importance.json. Each records the model reference it was computed
// from under "model" (downstream stages resolve it with ctx.modelPath) and carries the group definitions, so a stage
// needs nothing but its upstream directory. Every file is written to a temporary name and renamed into place.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import type { GroupKind, GroupMember, GroupMode, PruningGroup } from './groups.js';

export const GROUPS_FILE = 'groups.json';
export const SCORES_FILE = 'scores.json';
export const SCORES_TENSORS = 'scores.safetensors';
export const IMPORTANCE_FILE = 'importance.json';
/** Mean inputs of the measured projections (flap): F32 [channels] per group id, beside importance.json. */
export const COMPENSATION_TENSORS = 'compensation.safetensors';
/** Name of the calibration batch inside scores.safetensors ([samples, seq_len] int32). */
export const CALIBRATION_IDS = 'calibration.input_ids';

export interface GroupJson {
  id: string;
  kind: GroupKind;
  layer?: number;
  units: number;
  unit_size: number;
  unit: string;
  layer_ids?: number[];
  members: Array<{ role: string; param: string; axis: 0 | 1 | null; channels: number; repeat: number }>;
}

export interface GroupsFile {
  format: 'lopper.groups/1';
  model: string;
  mode: GroupMode;
  attention_layers: [number, number] | null;
  mlp_layers: [number, number] | null;
  layers: [number, number] | null;
  groups: GroupJson[];
}

export interface ScoresFile {
  format: 'lopper.scores/1';
  model: string;
  mode: GroupMode;
  importance: string;
  taylor: string | null;
  calibration: null | { dataset: string; samples: number; seq_len: number; sampling: string; records: Array<{ record: number; start: number }> };
  /** FLAP metric (importance flap only). */
  flap?: string;
  /** importance flap: group id → tensor name of the measured projection's mean input (bias compensation). */
  mean_inputs?: Record<string, string>;
  /** Mean token CE of the calibration batch (taylor only). */
  loss: number | null;
  groups: GroupJson[];
  /** Group id → member role → tensor name in scores.safetensors (members not scored are absent). */
  tensors: Record<string, Record<string, string>>;
}

export interface ImportanceFile {
  format: 'lopper.importance/1';
  model: string;
  mode: GroupMode;
  importance: string;
  taylor: string | null;
  /** FLAP metric (importance flap only). */
  flap?: string;
  reduce: string;
  normalize: string;
  /** How channel scores pooled into unit scores (sum; mean for flap). Absent in files of aggregate version 1: sum. */
  pool?: string;
  /** Group ids whose mean inputs are in compensation.safetensors (flap): the prune stage's bias compensation. */
  compensation?: string[];
  /** Per layer, per group kind, one score per unit (block: `attention` = per KV group, `mlp` = per channel;
   *  layer mode: `layer` = [the layer's score]). */
  layers: Record<string, Partial<Record<'attention' | 'mlp' | 'layer', number[]>>>;
  /** Channel mode: one score per hidden channel. */
  hidden?: number[];
  groups: GroupJson[];
}

export function groupToJson(g: PruningGroup): GroupJson {
  const out: GroupJson = { id: g.id, kind: g.kind, units: g.units, unit_size: g.unitSize, unit: g.unit, members: g.members.map((m) => ({ ...m })) };
  if (g.layer !== undefined) out.layer = g.layer;
  if (g.layerIds) out.layer_ids = [...g.layerIds];
  return out;
}

export function groupFromJson(j: GroupJson): PruningGroup {
  const g: PruningGroup = { id: j.id, kind: j.kind, units: j.units, unitSize: j.unit_size, unit: j.unit, members: j.members.map((m): GroupMember => ({ ...m })) };
  if (j.layer !== undefined) g.layer = j.layer;
  if (j.layer_ids) g.layerIds = [...j.layer_ids];
  return g;
}

/** Writes `data` to dir/name through a temporary file and a rename, so a reader never sees a partial file. */
export async function writeFileAtomic(dir: string, name: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  await writeFile(tmp, data);
  await rename(tmp, join(dir, name));
}

export async function writeJsonAtomic(dir: string, name: string, value: unknown): Promise<void> {
  await writeFileAtomic(dir, name, JSON.stringify(value, null, 2) + '\n');
}

/** Reads dir/name as JSON and checks its `format` tag. */
export async function readStageJson<T extends { format: string }>(dir: string, name: string, format: T['format'], upstream: string): Promise<T> {
  const path = join(dir, name);
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new LopperError('LP4007', `${path}: cannot read ${name} of stage "${upstream}" (${(cause as Error).message})`, {
      cause, hint: `The stage referenced here must be a ${name.replace('.json', '')}-producing stage that ran to completion.`,
    });
  }
  if (typeof value !== 'object' || value === null || (value as { format?: unknown }).format !== format) {
    throw new LopperError('LP4007', `${path}: not a ${format} file (stage "${upstream}" is of the wrong kind?)`);
  }
  return value as T;
}

/** Unit scores of one group inside an importance file. */
export function groupScores(file: ImportanceFile, g: PruningGroup): number[] {
  if (g.kind === 'hidden') return file.hidden ?? [];
  if (g.kind === 'layer') return g.layerIds!.map((l) => file.layers[String(l)]?.layer?.[0] ?? NaN);
  return file.layers[String(g.layer)]?.[g.kind] ?? [];
}
