// LP8xxx: backend and device. Merged into src/errors/catalog.ts by the lead; codes are permanent.
import type { ErrorInfo } from '../errors/catalog.js';

export const backendErrorCodes = {
  LP8001: { code: 'LP8001', name: 'WebGpuUnavailable', title: 'No WebGPU adapter is available (no GPU driver, or no Vulkan loader)' },
  LP8002: { code: 'LP8002', name: 'WebGpuDeviceRequestFailed', title: 'The WebGPU adapter refused to create a device with the requested features and limits' },
  LP8003: { code: 'LP8003', name: 'DeviceValidationError', title: 'The GPU device reported a validation error; results computed after it are not trustworthy' },
  LP8004: { code: 'LP8004', name: 'DeviceOutOfMemory', title: 'The GPU device ran out of memory' },
  LP8005: { code: 'LP8005', name: 'DeviceLost', title: 'The GPU device was lost' },
  LP8006: { code: 'LP8006', name: 'DeviceInternalError', title: 'The GPU device reported an internal error' },
  LP8007: { code: 'LP8007', name: 'TensorOverBindingLimit', title: 'A tensor is larger than the largest buffer a GPU shader can bind' },
  LP8008: { code: 'LP8008', name: 'WebGpuNotInitialised', title: 'The WebGPU backend was used before initWebGpu() set it up' },
} satisfies Record<string, ErrorInfo>;

export type BackendErrorCode = keyof typeof backendErrorCodes;
