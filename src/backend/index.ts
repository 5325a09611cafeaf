// tfjs backend selection (DESIGN.md "Backends and numerics"). `auto` tries tensorflow (tfjs-node-gpu / tfjs-node,
// optional peer dependencies imported dynamically), then webgpu (Dawn, when a hardware adapter exists), then wasm, then cpu.
// An explicitly requested backend that cannot start is an error, never a silent fallback.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../errors/lopper-error.js';
import { registerCpuKernels } from './cpu-kernels.js';

export type BackendKind = 'auto' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** tfjs backend name now active: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu'. */
  backend: string;
  /** Device description (WebGPU adapter, CUDA/CPU for tensorflow, SIMD/threads for wasm). */
  adapter?: string;
  features?: string[];
  /** Why auto skipped the backends before the chosen one. */
  skipped?: string[];
}

export interface InitBackendOptions {
  /** Passed to initWebGpu (float32 | mixed). */
  precision?: 'float32' | 'mixed';
}

/** Raised when a requested backend cannot start (code listed in src/backend/selection-error-codes.ts). */
function unavailable(kind: string, why: string, hint: string, cause?: unknown): LopperError {
  return new LopperError('LP8050', `backend "${kind}" is not available: ${why}`, { hint, cause });
}

async function initTensorflow(): Promise<BackendInfo> {
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
    } catch (e) {
      errors.push(`${pkg}: ${((e as Error).message ?? String(e)).split('\n')[0]}`);
      continue;
    }
    if (!tf.findBackendFactory('tensorflow')) {
      throw unavailable('tensorflow', `${pkg} loaded but registered no 'tensorflow' backend with lopper's @tensorflow/tfjs-core (two copies of tfjs-core installed?)`,
        'Install a tfjs-node version matching @tensorflow/tfjs-core 4.22.0 so npm dedupes tfjs-core.');
    }
    if (!(await tf.setBackend('tensorflow'))) throw unavailable('tensorflow', `${pkg} failed to initialise`, 'Check the libtensorflow install of the package.');
    return { backend: 'tensorflow', adapter: pkg.endsWith('-gpu') ? 'libtensorflow (CUDA)' : 'libtensorflow (CPU)' };
  }
  throw unavailable('tensorflow', `neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed (${errors.join('; ')})`,
    'It is an optional peer dependency: `npm install @tensorflow/tfjs-node` (downloads libtensorflow; the GPU build needs CUDA 11.2), or choose webgpu / wasm / cpu.');
}

async function initWebgpu(opts: InitBackendOptions, hardwareOnly = false): Promise<BackendInfo> {
  const { initWebGpu, disposeWebGpu } = await import('./webgpu.js');
  const info = await initWebGpu(opts.precision === undefined ? {} : { precision: opts.precision });
  // DESIGN.md: auto takes webgpu "when a GPU adapter exists". A software adapter (lavapipe) runs the same shaders on
  // the CPU, several times slower than the wasm backend, so auto passes over it; asking for webgpu by name still uses it.
  if (hardwareOnly && info.software) {
    await disposeWebGpu();
    throw unavailable('webgpu', `the only adapter is a software rasterizer (${info.adapter})`, 'Ask for --backend webgpu to use it anyway.');
  }
  return { backend: 'webgpu', adapter: info.adapter, features: info.features };
}

async function initWasm(): Promise<BackendInfo> {
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    throw unavailable('wasm', `cannot load @tensorflow/tfjs-backend-wasm (${(e as Error).message})`, 'Reinstall dependencies (npm ci).', e);
  }
  // Load the .wasm binaries from node_modules (no network): setWasmPaths takes a directory prefix.
  const require = createRequire(import.meta.url);
  const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  wasm.setWasmPaths(join(dist, '/'));
  let ok = false;
  try {
    ok = await tf.setBackend('wasm');
  } catch (e) {
    throw unavailable('wasm', `initialisation failed (${(e as Error).message})`, 'Choose runtime.backend: cpu.', e);
  }
  if (!ok) throw unavailable('wasm', 'initialisation failed', 'Choose runtime.backend: cpu.');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  return { backend: 'wasm', adapter: `wasm${simd ? ' simd' : ''}${threads ? ' threaded' : ''}` };
}

async function initCpu(): Promise<BackendInfo> {
  if (!(await tf.setBackend('cpu'))) throw unavailable('cpu', 'the tfjs cpu backend failed to initialise', 'Reinstall dependencies (npm ci).');
  // The cpu backend prints a "Hi, looks like you are running TensorFlow.js in Node.js…" banner on first use;
  // lopper reports its backend itself, so mark the banner as shown.
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  registerCpuKernels();
  return { backend: 'cpu', adapter: 'tfjs cpu (JavaScript)' };
}

/** Starts the requested tfjs backend and makes it active. */
export async function initBackend(kind: BackendKind, opts: InitBackendOptions = {}): Promise<BackendInfo> {
  switch (kind) {
    case 'cpu': return initCpu();
    case 'wasm': return initWasm();
    case 'tensorflow': return initTensorflow();
    case 'webgpu': return initWebgpu(opts);
    case 'auto': {
      const skipped: string[] = [];
      const attempts: [string, () => Promise<BackendInfo>][] = [
        ['tensorflow', initTensorflow], ['webgpu', () => initWebgpu(opts, true)], ['wasm', initWasm],
      ];
      for (const [name, init] of attempts) {
        try {
          return { ...(await init()), skipped };
        } catch (e) {
          skipped.push(`${name}: ${(e as Error).message}`);
        }
      }
      return { ...(await initCpu()), skipped };
    }
    default:
      throw new LopperError('LP8050', `unknown backend "${String(kind)}"`, { hint: 'Use auto, webgpu, tensorflow, wasm or cpu.' });
  }
}

/** One line for logs and run records, e.g. `backend webgpu (nvidia-h200)`. */
export function describeBackend(info: BackendInfo): string {
  return `backend ${info.backend}${info.adapter ? ` (${info.adapter})` : ''}`;
}
