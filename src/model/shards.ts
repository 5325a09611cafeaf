// How transformers' save_pretrained splits a checkpoint into shards (huggingface_hub
// `split_state_dict_into_shards_factory`, which save_pretrained calls): tensors are taken in parameter order; a
// tensor that would push the current shard past the limit starts a new shard; a tensor bigger than the limit
// on its own is appended as its own shard at once, while the current shard keeps filling (so it lands before
// that shard). Sizes are tensor bytes only; headers do not count.

/** transformers' default `max_shard_size="5GB"` (decimal gigabytes). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface ShardPlan {
  /** Shard file names with the tensor names each holds, in write order. */
  shards: { file: string; names: string[] }[];
  /** Sum of the tensors' bytes (the index's metadata.total_size). */
  totalSize: number;
}

export function planShards(tensors: { name: string; bytes: number }[], maxShardBytes = DEFAULT_MAX_SHARD_BYTES): ShardPlan {
  const groups: string[][] = [];
  let current: string[] = [];
  let currentSize = 0;
  let totalSize = 0;
  for (const { name, bytes } of tensors) {
    totalSize += bytes;
    if (bytes > maxShardBytes) {
      groups.push([name]);
      continue;
    }
    if (currentSize + bytes > maxShardBytes && current.length > 0) {
      groups.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(name);
    currentSize += bytes;
  }
  if (current.length > 0) groups.push(current);
  if (groups.length <= 1) return { shards: [{ file: 'model.safetensors', names: groups[0] ?? [] }], totalSize };
  const count = String(groups.length).padStart(5, '0');
  const shards = groups.map((names, i) => ({ file: `model-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`, names }));
  return { shards, totalSize };
}

/**
 * model.safetensors.index.json as save_pretrained writes it: `json.dumps(index, indent=2, sort_keys=True) + "\n"`,
 * or null when the plan has a single shard (then there is no index).
 */
export function shardIndexJson(plan: ShardPlan): string | null {
  if (plan.shards.length <= 1) return null;
  const weightMap: Record<string, string> = {};
  const entries = plan.shards.flatMap((s) => s.names.map((n) => [n, s.file] as const));
  for (const [name, file] of entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) weightMap[name] = file;
  return JSON.stringify({ metadata: { total_size: plan.totalSize }, weight_map: weightMap }, null, 2) + '\n';
}
