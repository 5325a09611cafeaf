// Fused float32 WGSL programs for the LLaMA forward and backward (RMSNorm, SwiGLU, rotary embedding), in the shape
// tfjs-backend-webgpu's runWebGPUProgram expects. tfjs generates the bindings (`result`, then one storage array per
// entry of variableNames, then `uniforms`), the shape uniforms and the `_start` entry point that calls
// `main(index)`; these programs index the flat arrays directly.
//
// Every barrier sits in workgroup-uniform control flow (WGSL rejects the shader otherwise): rows past the end of a
// reshaped dispatch (tfjs folds more than 65,535 workgroups into 2-D) are masked in their loads and stores, never
// by an early return. Loads are guarded by `if`, not select(): precision mixed disables robust buffer access, so an
// out-of-range read is not clamped.

/** The subset of tfjs-backend-webgpu's WebGPUProgram these programs fill in. */
export interface FusedProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms?: string;
  size?: boolean;
  outputComponent?: number;
  getUserCode(): string;
}

/** Threads per row for the row-reduction programs: small rows would leave most of a wide workgroup idle. */
function rowWorkgroupSize(cols: number): number {
  return cols >= 1024 ? 256 : 64;
}

const ELEMENTWISE_WORKGROUP = 128;

function flatDispatch(threads: number, workgroup: number): [number, number, number] {
  return [Math.ceil(threads / workgroup), 1, 1];
}

/** Tree sum of `buf` (one entry per thread, power-of-two length) into buf[0]; ends with a barrier. */
function workgroupSumSnippet(buffers: string[], workgroup: number): string {
  return `
    workgroupBarrier();
    for (var stride = ${workgroup / 2}; stride > 0; stride = stride >> 1) {
      if (tid < stride) {
        ${buffers.map((b) => `${b}[tid] = ${b}[tid] + ${b}[tid + stride];`).join('\n        ')}
      }
      workgroupBarrier();
    }`;
}

/** y = x·rsqrt(mean(x²) + eps)·w over rows of x [rows, cols]: one workgroup per row. */
export function rmsNormProgram(rows: number, cols: number): FusedProgram {
  const wg = rowWorkgroupSize(cols);
  return {
    variableNames: ['x', 'w'],
    outputShape: [rows, cols],
    shaderKey: 'lopper_rmsnorm',
    dispatchLayout: { x: [0, 1] },
    dispatch: [rows, 1, 1],
    workgroupSize: [wg, 1, 1],
    uniforms: 'eps : f32,',
    getUserCode: () => `
  var<workgroup> sumSquares : array<f32, ${wg}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    let row = index / ${wg};
    let cols = uniforms.xShape[1];
    let rowCols = select(0, cols, row < uniforms.xShape[0]);
    let base = row * cols;
    var acc = 0.0;
    for (var c = tid; c < rowCols; c = c + ${wg}) {
      let v = x[base + c];
      acc = acc + v * v;
    }
    sumSquares[tid] = acc;
    ${workgroupSumSnippet(['sumSquares'], wg)}
    let r = inverseSqrt(sumSquares[0] / f32(cols) + uniforms.eps);
    for (var c = tid; c < rowCols; c = c + ${wg}) {
      setOutputAtIndex(base + c, x[base + c] * r * w[c]);
    }
  }`,
  };
}

/**
 * dx = r·g − x·r³·mean(g·x) with g = dy·w and r = rsqrt(mean(x²) + eps), recomputed here (both row sums in one
 * pass) so that the forward needs no second output.
 */
export function rmsNormGradInputProgram(rows: number, cols: number): FusedProgram {
  const wg = rowWorkgroupSize(cols);
  return {
    variableNames: ['x', 'w', 'dy'],
    outputShape: [rows, cols],
    shaderKey: 'lopper_rmsnorm_dx',
    dispatchLayout: { x: [0, 1] },
    dispatch: [rows, 1, 1],
    workgroupSize: [wg, 1, 1],
    uniforms: 'eps : f32,',
    getUserCode: () => `
  var<workgroup> sumSquares : array<f32, ${wg}>;
  var<workgroup> sumGradDotX : array<f32, ${wg}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    let row = index / ${wg};
    let cols = uniforms.xShape[1];
    let rowCols = select(0, cols, row < uniforms.xShape[0]);
    let base = row * cols;
    var accSquares = 0.0;
    var accGradDotX = 0.0;
    for (var c = tid; c < rowCols; c = c + ${wg}) {
      let v = x[base + c];
      accSquares = accSquares + v * v;
      accGradDotX = accGradDotX + dy[base + c] * w[c] * v;
    }
    sumSquares[tid] = accSquares;
    sumGradDotX[tid] = accGradDotX;
    ${workgroupSumSnippet(['sumSquares', 'sumGradDotX'], wg)}
    let n = f32(cols);
    let r = inverseSqrt(sumSquares[0] / n + uniforms.eps);
    let xScale = r * r * r * (sumGradDotX[0] / n);
    for (var c = tid; c < rowCols; c = c + ${wg}) {
      setOutputAtIndex(base + c, r * dy[base + c] * w[c] - x[base + c] * xScale);
    }
  }`,
  };
}

/** Rows per workgroup of rmsNormGradWeightPartialProgram: about 256 partial rows whatever the row count. */
export function rmsNormGradWeightRowsPerGroup(rows: number): number {
  return Math.max(1, Math.ceil(rows / 256));
}

/**
 * Partial column sums of dy·x·r over blocks of `rowsPerGroup` rows → [groups, cols]. Each workgroup walks its rows
 * whole (r needs the full row), so a thread owns the columns tid + k·wg for k < ceil(cols / wg): that count is baked
 * into the shader (private arrays need a constant length) and into its key.
 */
export function rmsNormGradWeightPartialProgram(rows: number, cols: number, rowsPerGroup: number): FusedProgram {
  const wg = rowWorkgroupSize(cols);
  const perThread = Math.ceil(cols / wg);
  const groups = Math.ceil(rows / rowsPerGroup);
  return {
    variableNames: ['x', 'dy'],
    outputShape: [groups, cols],
    shaderKey: `lopper_rmsnorm_dw_partial_${perThread}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [groups, 1, 1],
    workgroupSize: [wg, 1, 1],
    uniforms: 'eps : f32, rowsPerGroup : i32,',
    getUserCode: () => `
  var<workgroup> sumSquares : array<f32, ${wg}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    let groupIndex = index / ${wg};
    let rows = uniforms.xShape[0];
    let cols = uniforms.xShape[1];
    var xRow : array<f32, ${perThread}>;
    var acc : array<f32, ${perThread}>;
    for (var k = 0; k < ${perThread}; k = k + 1) {
      acc[k] = 0.0;
    }
    for (var i = 0; i < uniforms.rowsPerGroup; i = i + 1) {
      let row = groupIndex * uniforms.rowsPerGroup + i;
      let rowValid = row < rows;
      var accSquares = 0.0;
      for (var k = 0; k < ${perThread}; k = k + 1) {
        let c = tid + k * ${wg};
        xRow[k] = 0.0;
        if (rowValid && c < cols) {
          xRow[k] = x[row * cols + c];
        }
        accSquares = accSquares + xRow[k] * xRow[k];
      }
      sumSquares[tid] = accSquares;
      ${workgroupSumSnippet(['sumSquares'], wg)}
      let r = inverseSqrt(sumSquares[0] / f32(cols) + uniforms.eps);
      // Everyone has read sumSquares[0] before the next row overwrites the buffer.
      workgroupBarrier();
      for (var k = 0; k < ${perThread}; k = k + 1) {
        let c = tid + k * ${wg};
        if (rowValid && c < cols) {
          acc[k] = acc[k] + dy[row * cols + c] * xRow[k] * r;
        }
      }
    }
    if (groupIndex < uniforms.outShape[0]) {
      for (var k = 0; k < ${perThread}; k = k + 1) {
        let c = tid + k * ${wg};
        if (c < cols) {
          setOutputAtIndex(groupIndex * cols + c, acc[k]);
        }
      }
    }
  }`,
  };
}

/** Σ over rows of partial [rows, cols] → [cols], one thread per column (coalesced across the workgroup). */
export function columnSumProgram(cols: number): FusedProgram {
  return {
    variableNames: ['partial'],
    outputShape: [cols],
    shaderKey: 'lopper_column_sum',
    dispatchLayout: { x: [0] },
    dispatch: flatDispatch(cols, 64),
    workgroupSize: [64, 1, 1],
    size: true,
    getUserCode: () => `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let rows = uniforms.partialShape[0];
      let cols = uniforms.partialShape[1];
      var acc = 0.0;
      for (var r = 0; r < rows; r = r + 1) {
        acc = acc + partial[r * cols + index];
      }
      setOutputAtIndex(index, acc);
    }
  }`,
  };
}

export type SwigluPart = 'forward' | 'gradGate' | 'gradUp';

/** Inputs each part reads: the pipeline layout is derived from the shader, so an unread binding would not exist. */
export const swigluInputs: Record<SwigluPart, string[]> = {
  forward: ['g', 'u'],
  gradGate: ['dy', 'g', 'u'],
  gradUp: ['dy', 'g'],
};

/**
 * SwiGLU elementwise: forward silu(g)·u; gradGate dy·u·σ(g)·(1 + g·(1 − σ(g))); gradUp dy·g·σ(g). σ is written as
 * tfjs's Sigmoid kernel writes it. vec4 lanes when the size allows.
 */
export function swigluProgram(shape: number[], part: SwigluPart): FusedProgram {
  const size = shape.reduce((a, d) => a * d, 1);
  const lanes = size % 4 === 0 ? 4 : 1;
  const type = lanes === 4 ? 'vec4<f32>' : 'f32';
  const value: Record<SwigluPart, string> = {
    forward: 'gv * s * u[index]',
    gradGate: `dy[index] * u[index] * s * (${type}(1.0) + gv * (${type}(1.0) - s))`,
    gradUp: 'dy[index] * gv * s',
  };
  return {
    variableNames: swigluInputs[part],
    outputShape: shape,
    shaderKey: `lopper_swiglu_${part}_${lanes}`,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: flatDispatch(size / lanes, ELEMENTWISE_WORKGROUP),
    workgroupSize: [ELEMENTWISE_WORKGROUP, 1, 1],
    size: true,
    outputComponent: lanes,
    getUserCode: () => `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let gv = g[index];
      let s = ${type}(1.0) / (${type}(1.0) + exp(-gv));
      setOutputAtIndex(index, ${value[part]});
    }
  }`,
  };
}

/**
 * HF rotary embedding (rotate_half) fused with the head transpose: x [B, T, n, D] → x·cos + rotate_half(x)·sin laid
 * out [B, n, T, D]. The cos/sin tables are [T, 1, D] (read flat as [T, D]); their bindings are not named cos/sin,
 * which would shadow WGSL's builtins.
 */
export function ropeToHeadsProgram(B: number, T: number, n: number, D: number): FusedProgram {
  return {
    variableNames: ['x', 'cosTable', 'sinTable'],
    outputShape: [B, n, T, D],
    shaderKey: 'lopper_rope_to_heads',
    dispatchLayout: { x: [0, 1, 2, 3] },
    dispatch: flatDispatch(B * n * T * D, ELEMENTWISE_WORKGROUP),
    workgroupSize: [ELEMENTWISE_WORKGROUP, 1, 1],
    size: true,
    getUserCode: () => `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let coords = getCoordsFromIndex(index);
      let b = coords[0];
      let h = coords[1];
      let t = coords[2];
      let d = coords[3];
      let heads = uniforms.outShape[1];
      let steps = uniforms.outShape[2];
      let dim = uniforms.outShape[3];
      let halfDim = dim / 2;
      let srcBase = ((b * steps + t) * heads + h) * dim;
      let table = t * dim + d;
      var rotated = 0.0;
      if (d < halfDim) {
        rotated = -x[srcBase + d + halfDim];
      } else {
        rotated = x[srcBase + d - halfDim];
      }
      setOutputAtIndex(index, x[srcBase + d] * cosTable[table] + rotated * sinTable[table]);
    }
  }`,
  };
}

/**
 * Gradient of ropeToHeadsProgram: dy [B, n, T, D] → dx [B, T, n, D], the transposed rotation
 * dx[j] = dy[j]·cos[j] + (j < D/2 ? dy[j + D/2]·sin[j + D/2] : −dy[j − D/2]·sin[j − D/2]).
 */
export function ropeFromHeadsGradProgram(B: number, T: number, n: number, D: number): FusedProgram {
  return {
    variableNames: ['dy', 'cosTable', 'sinTable'],
    outputShape: [B, T, n, D],
    shaderKey: 'lopper_rope_from_heads_grad',
    dispatchLayout: { x: [0, 1, 2, 3] },
    dispatch: flatDispatch(B * T * n * D, ELEMENTWISE_WORKGROUP),
    workgroupSize: [ELEMENTWISE_WORKGROUP, 1, 1],
    size: true,
    getUserCode: () => `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let coords = getCoordsFromIndex(index);
      let b = coords[0];
      let t = coords[1];
      let h = coords[2];
      let j = coords[3];
      let steps = uniforms.outShape[1];
      let heads = uniforms.outShape[2];
      let dim = uniforms.outShape[3];
      let halfDim = dim / 2;
      let srcBase = ((b * heads + h) * steps + t) * dim;
      let tableBase = t * dim;
      var fromPartner = 0.0;
      if (j < halfDim) {
        fromPartner = dy[srcBase + j + halfDim] * sinTable[tableBase + j + halfDim];
      } else {
        fromPartner = -dy[srcBase + j - halfDim] * sinTable[tableBase + j - halfDim];
      }
      setOutputAtIndex(index, dy[srcBase + j] * cosTable[tableBase + j] + fromPartner);
    }
  }`,
  };
}

/** Tree max of `buf` (one entry per thread, power-of-two length) into buf[0]; ends with a barrier. */
function workgroupMaxSnippet(buffer: string, workgroup: number): string {
  return `
    workgroupBarrier();
    for (var stride = ${workgroup / 2}; stride > 0; stride = stride >> 1) {
      if (tid < stride) {
        ${buffer}[tid] = max(${buffer}[tid], ${buffer}[tid + stride]);
      }
      workgroupBarrier();
    }`;
}

/**
 * Causal softmax(s·scale + mask) over rows of s [rows, T], the rows being query positions r with the key limit
 * r mod T (GQA stacks rep query heads of T rows each). Masked columns are never read and get exactly 0, which is
 * what the composite's additive −1e9 gives after exp underflows; the visible part is computed as tfjs's Softmax
 * kernel computes it (scaled value, row max, exp(v − max) / Σ).
 */
export function causalSoftmaxProgram(rows: number, cols: number): FusedProgram {
  const wg = rowWorkgroupSize(cols);
  return {
    variableNames: ['scores'],
    outputShape: [rows, cols],
    shaderKey: 'lopper_causal_softmax',
    dispatchLayout: { x: [0, 1] },
    dispatch: [rows, 1, 1],
    workgroupSize: [wg, 1, 1],
    uniforms: 'scale : f32,',
    getUserCode: () => `
  var<workgroup> rowMax : array<f32, ${wg}>;
  var<workgroup> rowSum : array<f32, ${wg}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    let row = index / ${wg};
    let cols = uniforms.scoresShape[1];
    let rowValid = row < uniforms.scoresShape[0];
    let rowCols = select(0, cols, rowValid);
    let visible = select(0, row % cols + 1, rowValid);
    let base = row * cols;
    var threadMax = -3.402823e+38f;
    for (var c = tid; c < visible; c = c + ${wg}) {
      threadMax = max(threadMax, scores[base + c] * uniforms.scale);
    }
    rowMax[tid] = threadMax;
    ${workgroupMaxSnippet('rowMax', wg)}
    let m = rowMax[0];
    var acc = 0.0;
    for (var c = tid; c < visible; c = c + ${wg}) {
      acc = acc + exp(scores[base + c] * uniforms.scale - m);
    }
    rowSum[tid] = acc;
    ${workgroupSumSnippet(['rowSum'], wg)}
    let total = rowSum[0];
    for (var c = tid; c < rowCols; c = c + ${wg}) {
      var p = 0.0;
      if (c < visible) {
        p = exp(scores[base + c] * uniforms.scale - m) / total;
      }
      setOutputAtIndex(base + c, p);
    }
  }`,
  };
}

/**
 * Gradient of causalSoftmaxProgram from its output p: ds = (dy·p − Σ(dy·p)·p)·scale, in the order of tfjs's
 * Softmax gradient followed by the scale's. Masked columns (p = 0) are skipped and get 0.
 */
export function causalSoftmaxGradProgram(rows: number, cols: number): FusedProgram {
  const wg = rowWorkgroupSize(cols);
  return {
    variableNames: ['p', 'dy'],
    outputShape: [rows, cols],
    shaderKey: 'lopper_causal_softmax_grad',
    dispatchLayout: { x: [0, 1] },
    dispatch: [rows, 1, 1],
    workgroupSize: [wg, 1, 1],
    uniforms: 'scale : f32,',
    getUserCode: () => `
  var<workgroup> rowDot : array<f32, ${wg}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    let row = index / ${wg};
    let cols = uniforms.pShape[1];
    let rowValid = row < uniforms.pShape[0];
    let rowCols = select(0, cols, rowValid);
    let visible = select(0, row % cols + 1, rowValid);
    let base = row * cols;
    var acc = 0.0;
    for (var c = tid; c < visible; c = c + ${wg}) {
      acc = acc + dy[base + c] * p[base + c];
    }
    rowDot[tid] = acc;
    ${workgroupSumSnippet(['rowDot'], wg)}
    let dot = rowDot[0];
    for (var c = tid; c < rowCols; c = c + ${wg}) {
      var g = 0.0;
      if (c < visible) {
        let pc = p[base + c];
        g = (dy[base + c] * pc - dot * pc) * uniforms.scale;
      }
      setOutputAtIndex(base + c, g);
    }
  }`,
  };
}
