// Child of bench/runner-cache.ts: one `run()` of a recipe through the built runner, timed from after Node start-up
// (module loading, planning with the memoized hashes, cache checks, run record and lockfile all included).
const t0 = performance.now();
const [recipe, store, only] = process.argv.slice(2);
const { run } = await import('../dist/run/index.js');
const tImport = performance.now();
let r;
try {
  r = await run(recipe, { store, only: only ? only.split(',') : undefined, record: true, lockfile: true });
} catch (e) {
  process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }) + '\n');
  process.exit(0);
}
const t1 = performance.now();
const statuses = Object.fromEntries(Object.values(r.stages).map((s) => [s.id, s.status]));
process.stdout.write(JSON.stringify({ wallMs: t1 - t0, importMs: tImport - t0, runMs: t1 - tImport, executeMs: r.wallMs, statuses }) + '\n');
