// One WebGPU device per test file: created before the file's tests, destroyed after them (dawn.node keeps the process
// alive while a device exists). Where Dawn finds no adapter, `info` stays null and `skipReason` says why.
import { after, before } from 'node:test';
import { LopperError } from '../../src/errors/lopper-error.js';
import { disposeWebGpu, initWebGpu, type Precision, type WebGpuInfo } from '../../src/backend/webgpu.js';

export interface WebGpuSession {
  info: WebGpuInfo | null;
  skipReason: string;
}

export function webGpuSession(precision: Precision, hooks: { setup?: () => void; teardown?: () => void } = {}): WebGpuSession {
  const session: WebGpuSession = { info: null, skipReason: '' };
  before(async () => {
    hooks.setup?.();
    try {
      session.info = await initWebGpu({ precision });
    } catch (e) {
      if (e instanceof LopperError && e.code === 'LP8001') session.skipReason = `no WebGPU adapter on this machine (${e.message})`;
      else throw e;
    }
  });
  after(async () => {
    hooks.teardown?.();
    await disposeWebGpu();
  });
  return session;
}
