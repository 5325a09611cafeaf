// Trainer checkpoints: `<dir>/checkpoint-<step>/` with `state.json` (position in the run, optimizer step count,
// best validation so far, the log written so far, a fingerprint of the run's settings) and `tensors.safetensors`
// (`param/<name>`, optimizer moments `m/<name>` and `v/<name>`, best-so-far parameters `best/<name>`). Writes go to a
// temporary directory renamed into place, so a checkpoint is either complete or absent; older ones are removed.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HostTensor } from '../model/types.js';
import { decodeSafetensors, encodeSafetensors } from './tensor-file.js';

export interface CheckpointState {
  step: number;
  optimizerSteps: number;
  bestValLoss: number | null;
  bestStep: number | null;
  log: Record<string, unknown>[];
  fingerprint: string;
}

export interface Checkpoint {
  state: CheckpointState;
  tensors: Map<string, HostTensor>;
}

const PREFIX = 'checkpoint-';

export async function saveCheckpoint(dir: string, checkpoint: Checkpoint): Promise<string> {
  await mkdir(dir, { recursive: true });
  const final = path.join(dir, `${PREFIX}${checkpoint.state.step}`);
  const temp = path.join(dir, `.tmp-${PREFIX}${checkpoint.state.step}-${process.pid}`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp);
  await writeFile(path.join(temp, 'tensors.safetensors'), encodeSafetensors(checkpoint.tensors));
  await writeFile(path.join(temp, 'state.json'), JSON.stringify(checkpoint.state) + '\n');
  await rm(final, { recursive: true, force: true });
  await rename(temp, final);
  for (const name of await readdir(dir)) {
    if (name.startsWith(PREFIX) && name !== path.basename(final)) await rm(path.join(dir, name), { recursive: true, force: true });
  }
  return final;
}

/** The newest complete checkpoint in `dir` whose fingerprint matches, or null. */
export async function latestCheckpoint(dir: string, fingerprint: string): Promise<Checkpoint | null> {
  let names: string[];
  try { names = await readdir(dir); } catch { return null; }
  const steps = names.filter((n) => n.startsWith(PREFIX)).map((n) => Number(n.slice(PREFIX.length)))
    .filter((n) => Number.isInteger(n)).sort((a, b) => b - a);
  for (const step of steps) {
    const at = path.join(dir, `${PREFIX}${step}`);
    try {
      const state = JSON.parse(await readFile(path.join(at, 'state.json'), 'utf8')) as CheckpointState;
      if (state.fingerprint !== fingerprint) continue;
      const { tensors } = decodeSafetensors(new Uint8Array(await readFile(path.join(at, 'tensors.safetensors'))));
      return { state, tensors };
    } catch {
      continue; // unreadable: ignore it, as if it were absent
    }
  }
  return null;
}
