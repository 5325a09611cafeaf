// Resolved recipe → stage instances in topological order, with every reference checked and rewritten to the
// instance id it resolves to, matrix expansion carried downstream, layer ranges and files checked; then (planRecipe)
// a cache key per instance. Pure apart from reading model headers and hashing files through `hashFile`.
import { relative, resolve } from 'node:path';
import { LopperError, LopperErrors } from '../errors/lopper-error.js';
import type { SourceLocation } from '../errors/lopper-error.js';
import type { DatasetEntry, ModelEntry } from '../dsl/recipe-types.js';
import type { MatrixValue, ResolvedRecipe, StageTemplate, StageVariant } from '../dsl/resolve.js';
import { stageKinds } from '../dsl/schema.js';
import { dedupeAndSort } from '../dsl/schema-errors.js';
import type { DataPath } from '../dsl/source.js';
import type { DatasetSpec, ModelRef, OutputKind } from '../stages/types.js';
import type { Backend, Plan, PlannedStage } from './types.js';
import { findCycles, topologicalOrder } from './graph.js';
import { refUses, resolveRef } from './references.js';
import type { RefTarget, RefUse, StageInfo } from './references.js';
import { isFile, modelFiles, modelLayerCount, modelContextLength } from './model-files.js';
import type { ModelFiles } from './model-files.js';
import { stageKey } from './keys.js';
import { methodRuleErrors } from './method-rules.js';
import type { KeyInputs } from './keys.js';
import { sha256File } from './hash-file.js';
import type { HashFile } from './hash-file.js';

export interface CheckOptions {
  /** Missing model/dataset files: errors for plan/run, warnings for validate (recipes for checkpoints a user does not have). */
  missingFiles?: 'error' | 'warning';
}

/** A stage instance before its key is computed: a PlannedStage without its key, plus the template it came from. */
export interface StageInstance extends Omit<PlannedStage, 'name' | 'matrix' | 'modelRefs' | 'key' | 'keyInputs'> {
  template: StageTemplate;
  /** All matrix values this instance is bound to (own and inherited), in variable order. */
  matrix: Record<string, MatrixValue>;
  modelRefs: Record<string, ModelRef>;
}

export interface CheckedRecipe {
  resolved: ResolvedRecipe;
  /** Topological order. */
  instances: StageInstance[];
  warnings: LopperError[];
}

interface Located { error: LopperError; location: SourceLocation }

function withLocation(error: LopperError, location: SourceLocation): LopperError {
  return new LopperError(error.code, error.message, { hint: error.hint, location });
}

function formatValue(v: MatrixValue): string {
  return typeof v === 'string' ? v : String(v);
}

function setAt(obj: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node: any = obj;
  for (const seg of path.slice(0, -1)) node = node[seg];
  node[path[path.length - 1]!] = value;
}

/** Location of a value inside a stage variant (a value that came from ${matrix.x} points at the matrix entry). */
function stageValueLocation(resolved: ResolvedRecipe, stageId: string, variant: StageVariant, path: DataPath, at: 'key' | 'value' = 'value'): SourceLocation {
  const sub = variant.matrixSources.find((s) => s.path.length <= path.length && s.path.every((seg, i) => seg === path[i]));
  if (sub) return resolved.locate(sub.source, 'value');
  return resolved.locate(['stages', stageId, ...path], at);
}

/** What a stage's loader needs of a `models:` entry: the absolute path, and the tokenizer and format it names. */
function modelRefOf(entry: ModelEntry, f: ModelFiles): ModelRef {
  return { path: f.path, ...(f.tokenizer !== undefined ? { tokenizer: f.tokenizer } : {}), ...(entry.format !== undefined ? { format: entry.format } : {}) };
}

/** All checks that need the whole recipe; throws LopperErrors with every error found. */
export function checkRecipe(resolved: ResolvedRecipe, options: CheckOptions = {}): CheckedRecipe {
  const { recipe } = resolved;
  const errors: LopperError[] = [];
  const warnings: LopperError[] = [];
  const fileProblem = (e: LopperError): void => { (options.missingFiles === 'warning' ? warnings : errors).push(e); };
  const kinds = stageKinds();
  const infos = new Map<string, StageInfo>(resolved.stages.map((t) => [t.id, { id: t.id, kind: t.kind, outputKind: kinds.get(t.kind)!.outputKind }]));
  // Stages with their own errors (a partial resolve): references to them are checked by kind when it is known.
  const invalid = new Map(resolved.invalidStages.map((s) => [s.id, s.kind]));
  for (const [id, kind] of invalid) if (kind && kinds.has(kind)) infos.set(id, { id, kind, outputKind: kinds.get(kind)!.outputKind });
  const templates = new Map(resolved.stages.map((t) => [t.id, t]));

  // A stage named like a model entry would make model references ambiguous.
  for (const t of resolved.stages) {
    if (recipe.models && Object.prototype.hasOwnProperty.call(recipe.models, t.id)) {
      errors.push(new LopperError('LP2005', `stage "${t.id}" has the same name as the models: entry "${t.id}"; model references would be ambiguous`, {
        location: resolved.locate(['stages', t.id], 'key'), hint: 'rename the stage or the model',
      }));
    }
  }

  // Resolve every reference of every variant.
  const targets = new Map<StageVariant, { use: RefUse; target: RefTarget }[]>();
  const deps = new Map<string, string[]>();
  const refLocation = new Map<string, SourceLocation>(); // "from→to" → where `from` names `to`
  for (const t of resolved.stages) {
    const tdeps: string[] = [];
    for (const v of t.variants) {
      const list: { use: RefUse; target: RefTarget }[] = [];
      for (const use of refUses(t.kind, v.params)) {
        if (invalid.has(use.name) && !infos.has(use.name)) continue;
        const r = resolveRef(use, t.id, recipe, infos);
        const location = stageValueLocation(resolved, t.id, v, use.path);
        if (r instanceof LopperError) { errors.push(withLocation(r, location)); continue; }
        if (r.type === 'stage' && invalid.has(r.id)) continue;
        list.push({ use, target: r });
        if (r.type === 'stage') {
          if (!tdeps.includes(r.id)) tdeps.push(r.id);
          if (!refLocation.has(`${t.id}→${r.id}`)) refLocation.set(`${t.id}→${r.id}`, location);
        }
      }
      targets.set(v, list);
    }
    deps.set(t.id, tdeps);
  }

  // References of stages with other errors: reported too, so one validate run shows every problem.
  for (const s of resolved.invalidStages) {
    if (!s.kind || !kinds.has(s.kind)) continue;
    for (const use of refUses(s.kind, s.entry)) {
      if (use.name.includes('${') || (invalid.has(use.name) && !infos.has(use.name))) continue;
      const r = resolveRef(use, s.id, recipe, infos);
      if (r instanceof LopperError) errors.push(withLocation(r, resolved.locate(['stages', s.id, ...use.path], 'value')));
    }
  }

  const ids = resolved.stages.map((t) => t.id);
  const cycles = findCycles(ids, deps);
  for (const cycle of cycles) {
    // Located at the reference of the cycle's first stage (in recipe order) to the next one.
    const opening = refLocation.get(`${cycle[0]}→${cycle[1]}`);
    errors.push(new LopperError('LP2003', `dependency cycle: ${cycle.join(' → ')} (each stage reads the next)`, {
      location: opening ?? resolved.locate(['stages', cycle[0]!], 'key'),
      hint: 'a stage can only read stages that do not (directly or indirectly) read it',
    }));
  }

  // Matrix expansion, downstream included (not possible around a cycle; the other checks still run).
  const order = cycles.length > 0 ? [] : topologicalOrder(ids, deps);
  const varOrder: string[] = [];
  for (const t of resolved.stages) for (const [name] of t.matrix) if (!varOrder.includes(name)) varOrder.push(name);
  const instancesOf = new Map<string, StageInstance[]>();
  const byId = new Map<string, StageInstance>();
  const models = recipe.models ?? {};
  const datasets = recipe.datasets ?? {};
  const modelFileCache = new Map<string, ModelFiles>();
  const filesOfModel = (name: string): ModelFiles => {
    let f = modelFileCache.get(name);
    if (!f) { f = modelFiles(models[name] as ModelEntry, resolved.dir); modelFileCache.set(name, f); }
    return f;
  };

  for (const id of order) {
    const t = templates.get(id)!;
    const upstreamVars = new Set(deps.get(id)!.flatMap((d) => instancesOf.get(d)!.flatMap((i) => Object.keys(i.matrix))));
    const clash = t.matrix.find(([name]) => upstreamVars.has(name));
    if (clash) {
      errors.push(new LopperError('LP1013', `matrix variable "${clash[0]}" of stage "${id}" is already bound by a stage it reads`, {
        location: resolved.locate(['stages', id, 'matrix', clash[0]], 'key'), hint: 'give it another name',
      }));
      instancesOf.set(id, []);
      continue;
    }
    const list: StageInstance[] = [];
    for (const v of t.variants) {
      const refs = targets.get(v)!;
      let combos: Record<string, MatrixValue>[] = [{ ...v.binding }];
      for (const up of [...new Set(refs.flatMap((r) => (r.target.type === 'stage' ? [r.target.id] : [])))]) {
        combos = combos.flatMap((c) => instancesOf.get(up)!
          .filter((i) => Object.entries(i.matrix).every(([k, val]) => !(k in c) || c[k] === val))
          .map((i) => ({ ...c, ...i.matrix })));
      }
      if (combos.length === 0) {
        errors.push(new LopperError('LP2009', `stage "${id}" reads matrix-expanded stages whose values have no combination in common`, {
          location: resolved.locate(['stages', id], 'key'), hint: 'stages sharing a matrix variable must list the same values',
        }));
        continue;
      }
      for (const combo of combos) {
        const matrix: Record<string, MatrixValue> = {};
        for (const name of varOrder) if (name in combo) matrix[name] = combo[name]!;
        const instanceId = Object.keys(matrix).length === 0 ? id : `${id}@${Object.entries(matrix).map(([k, val]) => `${k}=${formatValue(val)}`).join(',')}`;
        const params = structuredClone(v.params) as unknown as Record<string, unknown>;
        delete params.description;
        const dependsOn: string[] = [];
        const stageRefs: Record<string, string> = {};
        const instModels: Record<string, string> = {};
        const instDatasets: Record<string, DatasetSpec> = {};
        const inherited: Record<string, string> = {};
        for (const { use, target } of refs) {
          if (target.type === 'stage') {
            const up = instancesOf.get(target.id)!.find((i) => Object.entries(i.matrix).every(([k, val]) => matrix[k] === val))!;
            setAt(params, use.path, up.id);
            if (!dependsOn.includes(up.id)) dependsOn.push(up.id);
            stageRefs[up.id] = up.id;
            if (up.outputKind !== 'model' && up.outputKind !== 'metrics') Object.assign(inherited, up.models);
          } else if (target.type === 'model') {
            instModels[target.name] = filesOfModel(target.name).path;
          } else {
            const entry = datasets[target.name] as DatasetEntry;
            const { path, format, template, ...options } = entry;
            instDatasets[target.name] = {
              name: target.name, path: resolve(resolved.dir, path), format,
              // A built-in template is named in `template`; a custom { context, continuation } stays in options.
              ...(typeof template === 'string' ? { template } : {}),
              options: { ...options, ...(template !== undefined && typeof template !== 'string' ? { template } : {}) },
            };
          }
        }
        for (const [k, p] of Object.entries(inherited)) if (!(k in instModels)) instModels[k] = p;
        const modelRefs: Record<string, ModelRef> = {};
        for (const [k, p] of Object.entries(instModels)) modelRefs[k] = k in models ? modelRefOf(models[k] as ModelEntry, filesOfModel(k)) : { path: p };
        const files: string[] = [];
        for (const name of Object.keys(instModels)) if (name in models) files.push(...filesOfModel(name).files);
        for (const d of Object.values(instDatasets)) files.push(d.path);
        const instance: StageInstance = {
          id: instanceId, template: t, kind: t.kind, outputKind: infos.get(id)!.outputKind, matrix, params,
          dependsOn, stageRefs, models: instModels, modelRefs, datasets: instDatasets, files: [...new Set(files)],
        };
        if (byId.has(instanceId)) {
          errors.push(new LopperError('LP2004', `stage instance id "${instanceId}" occurs twice`, {
            location: resolved.locate(['stages', id, 'matrix'], 'key'), hint: 'matrix values must be distinct',
          }));
          continue;
        }
        byId.set(instanceId, instance);
        list.push(instance);
      }
    }
    instancesOf.set(id, list);
  }

  // The group stage's params behind a prune stage (prune → aggregate → score → group).
  const groupBehindPrune = (p: Record<string, any>): Record<string, any> | undefined => {
    const paramsOf = (ref: unknown) => templates.get(String(ref))?.variants[0]?.params as Record<string, any> | undefined;
    const agg = paramsOf(p.importance);
    const score = agg ? paramsOf(agg.scores) : undefined;
    return score ? paramsOf(score.groups) : undefined;
  };
  // Layer ranges against the model's layer count, dataset formats, files.
  const layerCount = (ref: string, seen: Set<string> = new Set()): { layers?: number; from?: string } => {
    if (seen.has(ref)) return {};
    seen.add(ref);
    if (ref in models) {
      const c = modelLayerCount(models[ref] as ModelEntry, resolved.dir);
      return c.layers !== undefined ? { layers: c.layers, from: `model "${ref}"` } : {};
    }
    const t = templates.get(ref);
    const p = t?.variants[0]?.params as Record<string, any> | undefined;
    if (!t || !p) return {};
    if (t.kind === 'train') return typeof p.config?.num_hidden_layers === 'number' ? { layers: p.config.num_hidden_layers, from: `stage "${ref}" (config.num_hidden_layers)` } : {};
    if (t.kind === 'lora-finetune') return layerCount(String(p.model), seen);
    if (t.kind === 'prune') {
      const group = groupBehindPrune(p);
      if (!group || group.mode === 'layer') return {}; // layer pruning changes the count
      return layerCount(String(group.model), seen);
    }
    return {};
  };
  // Positions a model can attend over: pruning and LoRA keep its base's; a trained model has its config's.
  const contextLength = (ref: string, seen: Set<string> = new Set()): { positions?: number; from?: string } => {
    if (seen.has(ref)) return {};
    seen.add(ref);
    if (ref in models) {
      const n = modelContextLength(models[ref] as ModelEntry, resolved.dir);
      return n !== undefined ? { positions: n, from: `model "${ref}"` } : {};
    }
    const t = templates.get(ref);
    const p = t?.variants[0]?.params as Record<string, any> | undefined;
    if (!t || !p) return {};
    if (t.kind === 'train') return { positions: p.config?.max_position_embeddings ?? 2048, from: `stage "${ref}" (config.max_position_embeddings)` };
    if (t.kind === 'lora-finetune') return contextLength(String(p.model), seen);
    if (t.kind === 'prune') {
      const group = groupBehindPrune(p);
      return group ? contextLength(String(group.model), seen) : {};
    }
    return {};
  };
  for (const t of resolved.stages) {
    for (const v of t.variants) {
      const p = v.params as unknown as Record<string, any>;
      if (t.kind === 'evaluate' && typeof p.perplexity?.seq_len === 'number' && Array.isArray(p.models)) {
        for (const ref of p.models as unknown[]) {
          const c = contextLength(String(ref));
          if (c.positions !== undefined && p.perplexity.seq_len > c.positions) {
            errors.push(new LopperError('LP2012', `perplexity.seq_len ${p.perplexity.seq_len} is longer than the ${c.positions} positions of ${c.from} (evaluated as "${ref}")`, {
              location: stageValueLocation(resolved, t.id, v, ['perplexity', 'seq_len']),
              hint: `windows longer than the model's context give meaningless perplexities; use seq_len ≤ ${c.positions}`,
            }));
            break;
          }
        }
      }
      if (t.kind === 'group') {
        const mode = p.mode as string;
        const ranges: [DataPath, unknown][] = [[['attention', 'layers'], p.attention?.layers], [['mlp', 'layers'], p.mlp?.layers], [['layers'], p.layers]];
        if (mode === 'block' && p.layers !== undefined) {
          errors.push(new LopperError('LP1015', `stages.${t.id}.layers applies to mode channel and layer; in mode block give attention.layers and mlp.layers`, {
            location: stageValueLocation(resolved, t.id, v, ['layers'], 'key'),
          }));
        }
        if (mode !== 'block') {
          for (const part of ['attention', 'mlp']) {
            if (p[part] !== undefined) {
              errors.push(new LopperError('LP1015', `stages.${t.id}.${part} applies to mode block only; in mode ${mode} give layers: [start, end]`, {
                location: stageValueLocation(resolved, t.id, v, [part], 'key'),
              }));
            }
          }
        }
        const count = layerCount(String(p.model));
        for (const [path, range] of ranges) {
          if (!Array.isArray(range)) continue;
          const [start, end] = range as [number, number];
          const location = stageValueLocation(resolved, t.id, v, path);
          if (start >= end) {
            errors.push(new LopperError('LP2006', `layer range [${start}, ${end}] is empty: start must be < end (end is exclusive)`, {
              location, hint: `[${start}, ${start + 1}] is layer ${start} alone`,
            }));
          } else if (count.layers !== undefined && end > count.layers) {
            errors.push(new LopperError('LP2007', `layer range [${start}, ${end}] reaches past the last layer: ${count.from} has ${count.layers} layers (0–${count.layers - 1})`, {
              location, hint: `end is exclusive: [${start}, ${count.layers}] runs to the last layer`,
            }));
          }
        }
      }
      const datasetRule = (path: DataPath, name: unknown, allowed: string[], what: string): void => {
        const entry = typeof name === 'string' ? (datasets as Record<string, DatasetEntry>)[name] : undefined;
        if (entry && !allowed.includes(entry.format)) {
          errors.push(new LopperError('LP2010', `${what} needs a ${allowed.join(' or ')} dataset, but "${name}" has format ${entry.format}`, {
            location: stageValueLocation(resolved, t.id, v, path),
          }));
        }
      };
      if (t.kind === 'score' && p.calibration) datasetRule(['calibration', 'dataset'], p.calibration.dataset, ['text', 'jsonl'], 'calibration');
      if (t.kind === 'evaluate') {
        (p.perplexity?.datasets ?? []).forEach((d: unknown, i: number) => datasetRule(['perplexity', 'datasets', i], d, ['text'], 'perplexity'));
        (p.zero_shot?.tasks ?? []).forEach((task: { dataset?: unknown }, i: number) => datasetRule(['zero_shot', 'tasks', i, 'dataset'], task.dataset, ['multiple-choice'], 'a zero-shot task'));
      }
      if (t.kind === 'lora-finetune' || t.kind === 'train') {
        datasetRule(['dataset'], p.dataset, ['text', 'jsonl', 'alpaca'], `${t.kind} training`);
        if (p.val_dataset !== undefined) datasetRule(['val_dataset'], p.val_dataset, ['text', 'jsonl', 'alpaca'], `${t.kind} validation`);
      }
    }
  }
  errors.push(...methodRuleErrors(templates, (id, v, path, at) => stageValueLocation(resolved, id, v, path, at)));
  for (const [name, entry] of Object.entries(models)) {
    const f = filesOfModel(name);
    for (const m of f.missing) {
      const field = m.field ?? 'path';
      fileProblem(new LopperError('LP2008', `model "${name}": ${relative(process.cwd(), m.path) || m.path} ${m.what}`, {
        location: resolved.locate(['models', name, field], 'value'),
        hint: field === 'tokenizer'
          ? 'point tokenizer at the tokenizer file (llama2.c .bin or tokenizer.json) or a directory holding tokenizer.json (paths are relative to the recipe file)'
          : 'point path at a local copy of the checkpoint (paths are relative to the recipe file)',
      }));
    }
    const c = modelLayerCount(entry as ModelEntry, resolved.dir);
    if (c.layers === undefined && 'problem' in c && c.problem) {
      fileProblem(new LopperError('LP2011', `model "${name}": ${c.problem}`, { location: resolved.locate(['models', name, 'path'], 'value') }));
    }
  }
  for (const [name, entry] of Object.entries(datasets)) {
    const path = resolve(resolved.dir, (entry as DatasetEntry).path);
    if (!isFile(path)) {
      fileProblem(new LopperError('LP2008', `dataset "${name}": ${relative(process.cwd(), path) || path} does not exist`, {
        location: resolved.locate(['datasets', name, 'path'], 'value'),
        hint: 'paths are relative to the recipe file',
      }));
    }
  }
  if (errors.length > 0) throw new LopperErrors(dedupeAndSort(errors));
  const instances = order.flatMap((id) => instancesOf.get(id)!);
  return { resolved, instances, warnings: dedupeAndSort(warnings) };
}


export interface PlanOptions extends CheckOptions {
  /** Content hash of a file (absolute path → hex). Default: streaming sha256; the runner passes a memoized one. */
  hashFile?: HashFile;
  /** Overrides runtime.backend for the numerics part of the keys (the runner passes the backend it resolved). */
  backend?: Backend;
  /** Stage versions by kind; default: StageModule.version from src/stages/registry.ts. */
  versions?: ReadonlyMap<string, string>;
}

async function registryVersions(): Promise<ReadonlyMap<string, string>> {
  const { stageRegistry } = await import('../stages/registry.js');
  return new Map([...stageRegistry.values()].map((m) => [m.kind, m.version]));
}

/** Computes cache keys for checked stage instances. */
export async function planChecked(checked: CheckedRecipe, options: PlanOptions = {}): Promise<Plan> {
  const { resolved } = checked;
  const recipe = resolved.recipe;
  const hashFile = options.hashFile ?? sha256File;
  const versions = options.versions ?? await registryVersions();
  const hashes = new Map<string, Promise<string>>();
  const hash = (path: string): Promise<string> => {
    let h = hashes.get(path);
    if (!h) { h = hashFile(path); hashes.set(path, h); }
    return h;
  };
  const seed = recipe.seed ?? 42;
  const runtime = { backend: (options.backend ?? recipe.runtime?.backend ?? 'auto') as Backend, precision: recipe.runtime?.precision ?? 'float32' };
  const models = recipe.models ?? {};
  const keys = new Map<string, string>();
  const stages: PlannedStage[] = [];
  for (const inst of checked.instances) {
    const version = versions.get(inst.kind);
    if (version === undefined) {
      throw new LopperErrors([new LopperError('LP7007', `no stage module is registered for kind "${inst.kind}"`, { location: resolved.locate(['stages', inst.template.id, 'kind'], 'value') })]);
    }
    const modelInputs: KeyInputs['models'] = {};
    for (const name of Object.keys(inst.models)) {
      if (!(name in models)) continue;
      const f = modelFiles(models[name] as ModelEntry, resolved.dir);
      const files: Record<string, string> = {};
      for (const file of f.files) {
        const label = f.tokenizerLabels[file] ?? (f.format === 'hf' ? relative(f.path, file) : file === f.path ? 'model' : 'tokenizer');
        files[label] = await hash(file);
      }
      modelInputs[name] = { format: f.format, files };
    }
    const datasetInputs: KeyInputs['datasets'] = {};
    for (const [name, d] of Object.entries(inst.datasets)) {
      datasetInputs[name] = { format: d.format, options: { ...d.options, ...(d.template !== undefined ? { template: d.template } : {}) }, sha256: await hash(d.path) };
    }
    const inputs: Record<string, string> = {};
    for (const dep of inst.dependsOn) inputs[dep] = keys.get(dep)!;
    const keyInputs: KeyInputs = {
      kind: inst.kind, version, params: inst.params, inputs, models: modelInputs, datasets: datasetInputs,
      seed, numerics: runtime,
    };
    const key = stageKey(keyInputs);
    keys.set(inst.id, key);
    stages.push({
      id: inst.id, name: inst.template.id, matrix: inst.matrix, kind: inst.kind, outputKind: inst.outputKind,
      params: inst.params, dependsOn: inst.dependsOn, stageRefs: inst.stageRefs, models: inst.models, modelRefs: inst.modelRefs, datasets: inst.datasets,
      files: inst.files, key, keyInputs: keyInputs as unknown as Record<string, unknown>,
    });
  }
  return {
    recipePath: resolved.path, recipeDir: resolved.dir, name: recipe.name, seed, runtime,
    store: resolve(resolved.dir, recipe.store ?? '.lopper'),
    stages,
  };
}
