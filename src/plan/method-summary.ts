// One line per pruning stage naming the method it runs and the paper/repository it follows, for `lopper plan` and
// `lopper explain` (the recipe says `importance: flap`; the plan says what that means).
type Params = Record<string, unknown>;

const importanceText: Readonly<Record<string, (p: Params) => string>> = {
  random: () => 'random: uniform [0, 1) per channel of the root member (LLM-Pruner RandomImportance)',
  l1: () => 'l1: Σ|w| per channel (LLM-Pruner MagnitudeImportance p=1)',
  l2: () => 'l2: Σw² per channel (LLM-Pruner MagnitudeImportance p=2)',
  taylor: (p) => `taylor ${String(p.taylor ?? 'param_first')}: LLM-Pruner's Taylor importance from calibration gradients`,
  wanda: () => 'wanda: Wanda-sp, mean_rows |W|·‖X‖₂ of o_proj / down_proj inputs (FLAP lib/prune.py prune_wanda_sp)',
  flap: (p) => `flap ${String(p.flap ?? 'WIFV')}: FLAP fluctuation metric of o_proj / down_proj inputs, standardized per layer; prune folds removed units into biases (FLAP lib/prune.py prune_flap)`,
  block_influence: () => 'block_influence: ShortGPT, 1 − mean cos(layer input, layer output) over calibration tokens',
};

const scopeText: Readonly<Record<string, string>> = {
  local: 'local: the same ratio in every group',
  global: 'global: units of every group ranked together',
  adaptive: "adaptive: FLAP's AL-AM, heads and MLP channels ranked together, each weighing its parameters",
};

/** The method line of a stage, or undefined for stages that run no pruning method. */
export function methodSummary(kind: string, params: Params): string | undefined {
  if (kind === 'score') return (importanceText[String(params.importance ?? 'taylor')] ?? (() => String(params.importance)))(params);
  if (kind === 'prune') {
    const budget = params.target_params !== undefined ? `target_params ${String(params.target_params)}` : `ratio ${String(params.ratio)}`;
    const bias = params.bias_compensation === false ? '; no bias compensation' : params.bias_compensation === true ? '; FLAP bias compensation' : '';
    return `${scopeText[String(params.scope ?? 'local')] ?? String(params.scope)}; ${budget}${bias}`;
  }
  return undefined;
}
