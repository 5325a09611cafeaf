import { test } from 'node:test';
import assert from 'node:assert/strict';
import { comparison, comparisonJson, formatComparison, formatCount, formatTable, parseMetrics, type MetricsFile } from '../../src/eval/report.js';
import { LopperError } from '../../src/errors/lopper-error.js';

const metrics: MetricsFile = {
  models: {
    base: {
      params: 6_738_415_616, macs: 423_926_693_888, perplexity: { wikitext2: 12.62, ptb: 22.14 },
      zero_shot: { boolq: { acc: 0.7306, acc_norm: 0.7 }, arc_easy: { acc: 0.7, acc_norm: 0.6734 }, winogrande: { acc: 0.6993 } },
      tokens_per_second: 1000,
    },
    pruned: {
      params: 5_422_000_000, macs: 339_600_000_000, perplexity: { wikitext2: 17.58, ptb: 30.11 },
      zero_shot: { boolq: { acc: 0.6, acc_norm: 0.5 }, arc_easy: { acc: 0.6, acc_norm: 0.6 }, winogrande: { acc: 0.6 } },
      tokens_per_second: 1250,
    },
  },
  tasks: {
    boolq: { template: 'boolq', metric: 'acc', questions: 3270 },
    arc_easy: { template: 'arc_easy', metric: 'acc_norm', questions: 2376 },
    winogrande: { template: 'winogrande', metric: 'acc', questions: 1267 },
  },
  settings: { macs_seq_len: 64 },
};

test('columns per metric, reported metric per task, average and ratios to the first model', () => {
  const c = comparison(metrics);
  assert.equal(c.baseline, 'base');
  assert.deepEqual(c.columns.map((x) => x.label), [
    'params', 'MACs@64', 'wikitext2 ppl', 'ptb ppl', 'boolq acc', 'arc_easy acc_norm', 'winogrande acc', 'average', 'tokens/s',
  ]);
  const [base, pruned] = c.rows;
  assert.equal(base!.ratio, undefined);
  assert.ok(Math.abs(base!.values.average! - (0.7306 + 0.6734 + 0.6993) / 3) < 1e-12);
  assert.ok(Math.abs(pruned!.values.average! - 0.6) < 1e-12);
  assert.ok(Math.abs(pruned!.ratio!.average! - 0.6 / ((0.7306 + 0.6734 + 0.6993) / 3)) < 1e-12);
  assert.ok(Math.abs(pruned!.ratio!['perplexity.wikitext2']! - 17.58 / 12.62) < 1e-12);
  assert.equal(pruned!.ratio!.tokens_per_second, 1.25);
  assert.equal(c.summary[0], 'pruned keeps 85.6% of base average accuracy, 80.5% of its parameters, 80.1% of its MACs, wikitext2 ppl +39.3%, ptb ppl +36.0%, 1.25× the tokens/s');
});

test('the printed table', () => {
  assert.equal(
    formatTable(metrics),
    [
      'model           params           MACs@64   wikitext2 ppl         ptb ppl       boolq acc  arc_easy acc_norm  winogrande acc         average       tokens/s',
      '------  --------------  ----------------  --------------  --------------  --------------  -----------------  --------------  --------------  -------------',
      'base             6.74B           423.93G           12.62           22.14           73.06              67.34           69.93           70.11           1000',
      'pruned  5.42B (−19.5%)  339.60G (−19.9%)  17.58 (+39.3%)  30.11 (+36.0%)  60.00 (−17.9%)     60.00 (−10.9%)  60.00 (−14.2%)  60.00 (−14.4%)  1250 (+25.0%)',
      'pruned keeps 85.6% of base average accuracy, 80.5% of its parameters, 80.1% of its MACs, wikitext2 ppl +39.3%, ptb ppl +36.0%, 1.25× the tokens/s',
    ].join('\n'),
  );
});

test('metrics a model lacks print as a dash and leave its average out', () => {
  const partial: MetricsFile = {
    models: {
      base: { params: 1000, perplexity: { a: 5 }, zero_shot: { t: { acc: 0.5 } }, tokens_per_second: 10 },
      other: { params: 900, perplexity: {}, zero_shot: {}, tokens_per_second: 12 },
    },
  };
  const c = comparison(partial);
  assert.equal(c.rows[1]!.values['perplexity.a'], null);
  assert.equal(c.rows[1]!.values.average, null);
  assert.ok(formatTable(partial).split('\n')[3]!.includes('—'));
  assert.equal(c.summary[0], 'other 90.0% of its parameters, 1.20× the tokens/s');
});

test('without task info, built-in task names pick their reported metric; others use acc', () => {
  const c = comparison({
    models: { m: { params: 1, perplexity: {}, zero_shot: { piqa: { acc: 0.5, acc_norm: 0.6 }, mine: { acc: 0.3, acc_norm: 0.4 } }, tokens_per_second: 1 } },
  });
  assert.deepEqual(c.rows[0]!.values['zero_shot.piqa'], 0.6);
  assert.deepEqual(c.rows[0]!.values['zero_shot.mine'], 0.3);
});

test('formatComparison puts both runs in one table, relative to run A first model', () => {
  const b: MetricsFile = { models: { tuned: { ...metrics.models.pruned!, perplexity: { wikitext2: 15 } } } };
  const text = formatComparison(metrics, b, ['run1', 'run2']);
  const lines = text.split('\n');
  assert.match(lines[2]!, /^run1:base /);
  assert.match(lines[3]!, /^run1:pruned /);
  assert.match(lines[4]!, /^run2:tuned /);
  assert.match(text, /run2:tuned keeps 85\.6% of run1:base average accuracy/);
  const json = comparisonJson(metrics, b, ['run1', 'run2']);
  assert.equal(json.baseline, 'run1:base');
  assert.equal(json.rows.length, 3);
  assert.equal(JSON.parse(JSON.stringify(json)).rows[2].values['perplexity.wikitext2'], 15);
});

test('counts and metrics files', () => {
  assert.deepEqual([formatCount(260_000), formatCount(999), formatCount(6.74e9), formatCount(1.5e12)], ['260.00K', '999', '6.74G', '1.50T']);
  assert.equal(parseMetrics(metrics, 'm.json'), metrics);
  assert.throws(() => parseMetrics({}, 'm.json'), (e: unknown) => e instanceof LopperError && e.code === 'LP5013');
  assert.throws(() => parseMetrics({ models: { a: { params: 1 } } }, 'm.json'), (e: unknown) => e instanceof LopperError && /"a"/.test(e.message));
});
