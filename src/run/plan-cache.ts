// The plan cache: a fully cached rerun should not pay for loading the planner (schema compilation, stage modules).
// A stored plan is reused when the recipe text, the options, lopper's own code (stat of every file of the installed
// package) and every file and model directory the plan reads (size, mtime, inode) are unchanged — the same rule
// the file-hash memo uses. Anything else replans.
import { readFile, readdir, rename, stat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plan } from '../plan/types.js';
import { canonicalJson, sha256Hex } from './digest.js';

interface StatSig { path: string; size: number; mtimeMs: number; ino: number }
interface Entry { version: 1; recipeSha: string; code: string; inputs: StatSig[]; plan: Plan }

/** Same "racy" rule as the hash memo: a file touched this recently may change again unnoticed. */
const RACY_WINDOW_MS = 1000;

async function sig(path: string): Promise<StatSig | undefined> {
  try {
    const s = await stat(path);
    return { path, size: s.size, mtimeMs: s.mtimeMs, ino: s.ino };
  } catch {
    return undefined;
  }
}

let codeFingerprint: Promise<string> | undefined;

/** Stat signature of lopper's own code (the package's src/ or dist/ tree, schema/, package.json). */
function lopperCode(): Promise<string> {
  codeFingerprint ??= (async () => {
    const moduleRoot = fileURLToPath(new URL('..', import.meta.url));
    const packageRoot = fileURLToPath(new URL('../..', import.meta.url));
    const sigs: string[] = [];
    async function walk(dir: string): Promise<void> {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) {
          const s = await sig(p);
          if (s) sigs.push(`${p} ${s.size} ${s.mtimeMs} ${s.ino}`);
        }
      }
    }
    await walk(moduleRoot);
    await walk(join(packageRoot, 'schema'));
    const pkg = await sig(join(packageRoot, 'package.json'));
    if (pkg) sigs.push(`package.json ${pkg.size} ${pkg.mtimeMs} ${pkg.ino}`);
    return sha256Hex(sigs.sort().join('\n'));
  })();
  return codeFingerprint;
}

function planInputs(plan: Plan): string[] {
  const paths = new Set<string>([plan.recipePath]);
  for (const s of plan.stages) {
    for (const f of s.files) paths.add(f);
    for (const m of Object.values(s.models)) paths.add(m);
    for (const d of Object.values(s.datasets)) paths.add(d.path);
  }
  return [...paths].sort();
}

export function planCachePath(storeDir: string, recipePath: string, options: { set?: readonly string[]; backend?: string }): string {
  const id = sha256Hex(canonicalJson({ recipePath, set: options.set ?? [], backend: options.backend ?? null })).slice(0, 32);
  return join(storeDir, 'plans', `${id}.json`);
}

/** Returns the stored plan when nothing it depends on changed; otherwise computes, stores and returns a new one. */
export async function cachedPlan(
  storeDir: string, recipePath: string, options: { set?: readonly string[]; backend?: string }, compute: () => Promise<Plan>,
): Promise<{ plan: Plan; cached: boolean }> {
  const path = planCachePath(storeDir, recipePath, options);
  // An unreadable recipe (missing, a directory): the planner reports it properly (LP1014), without a cache.
  const text = await readFile(recipePath).catch(() => undefined);
  if (text === undefined) return { plan: await compute(), cached: false };
  const code = await lopperCode();
  const recipeSha = sha256Hex(text);
  try {
    const entry = JSON.parse(await readFile(path, 'utf8')) as Entry;
    if (entry.version === 1 && entry.recipeSha === recipeSha && entry.code === code) {
      const now = await Promise.all(entry.inputs.map((i) => sig(i.path)));
      const same = now.every((s, i) => s && s.size === entry.inputs[i]!.size && s.mtimeMs === entry.inputs[i]!.mtimeMs && s.ino === entry.inputs[i]!.ino);
      if (same) return { plan: entry.plan, cached: true };
    }
  } catch { /* no usable entry */ }
  const plan = await compute();
  const inputs: StatSig[] = [];
  for (const p of planInputs(plan)) {
    const s = await sig(p);
    if (!s || Date.now() - s.mtimeMs < RACY_WINDOW_MS) return { plan, cached: false };
    inputs.push(s);
  }
  // The recipe may have been edited while planning: only store the plan if the text is the one we planned.
  if (sha256Hex(await readFile(recipePath)) !== recipeSha) return { plan, cached: false };
  const entry: Entry = { version: 1, recipeSha, code, inputs, plan };
  await mkdir(join(storeDir, 'plans'), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(entry));
  await rename(tmp, path);
  return { plan, cached: false };
}
