// The report.html an evaluate stage writes beside metrics.json, so a cached run already has its page: this stage's
// results with what its upstream stages stored (importance, plans, loss curves). An upstream model-producing stage
// may still be writing its model when evaluate finishes (StageResult.pending), so the page is built once the
// upstream stages are committed (StageContext.upstream waits), and handed to the runner as this stage's own pending
// work: the stage is committed after it.
import { join } from 'node:path';
import type { StageContext } from '../stages/types.js';
import { renderReport, writeReportFile } from './index.js';
import type { ReportSource } from './source.js';

export const STAGE_REPORT_FILE = 'report.html';

export function writeStageReport(ctx: StageContext): Promise<void> {
  const written = (async () => {
    const upstream = (await ctx.upstream?.()) ?? [];
    const source: ReportSource = {
      title: `${ctx.id} (evaluate)`,
      // No store path or run id: the output is content-addressed, so the page holds only what the stages computed.
      stages: [...upstream.map((u) => ({ ...u, status: 'ran' })), { id: ctx.id, kind: 'evaluate', status: 'ran', dir: ctx.outDir, dependsOn: [] }],
    };
    try {
      const { html } = await renderReport(source);
      await writeReportFile(join(ctx.outDir, STAGE_REPORT_FILE), html);
    } catch (e) {
      // The metrics are what the stage is for (a 7B evaluation takes minutes): a page that cannot be built is a
      // warning, and `lopper report` says why when asked for it.
      ctx.log(`warning: ${STAGE_REPORT_FILE} not written: ${e instanceof Error ? e.message : String(e)}`);
    }
  })();
  // Awaited by the executor; a run torn down first must not see an unhandled rejection.
  written.catch(() => undefined);
  return written;
}
