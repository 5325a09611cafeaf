// The dtypes lopper reads model weights in and writes them back as (DESIGN.md: outputs keep the source dtype).
export type CheckpointDtype = 'float32' | 'float16' | 'bfloat16';
