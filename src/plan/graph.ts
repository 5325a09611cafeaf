// The stage graph before matrix expansion: cycles (reported with the whole cycle) and a deterministic
// topological order (ties broken by recipe order).

export interface GraphEdge { from: string; to: string }

/** Every elementary cycle found by depth-first search, each as [a, b, …, a] starting at its first stage in recipe order. */
export function findCycles(nodes: readonly string[], deps: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const visit = (n: string): void => {
    state.set(n, 'visiting');
    stack.push(n);
    for (const d of deps.get(n) ?? []) {
      if (!nodes.includes(d)) continue;
      if (state.get(d) === 'visiting') {
        const cycle = stack.slice(stack.indexOf(d));
        // Rotate to start at the earliest stage in recipe order, so the same cycle prints the same way.
        const first = cycle.reduce((a, b) => (nodes.indexOf(a) <= nodes.indexOf(b) ? a : b));
        const rotated = [...cycle.slice(cycle.indexOf(first)), ...cycle.slice(0, cycle.indexOf(first))];
        const id = [...rotated].sort().join('\u0000');
        if (!seen.has(id)) { seen.add(id); cycles.push([...rotated, first]); }
      } else if (!state.has(d)) {
        visit(d);
      }
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of nodes) if (!state.has(n)) visit(n);
  return cycles;
}

/** Stages ordered so every stage comes after the stages it reads; among ready stages, recipe order wins. */
export function topologicalOrder(nodes: readonly string[], deps: ReadonlyMap<string, readonly string[]>): string[] {
  const placed = new Set<string>();
  const order: string[] = [];
  while (order.length < nodes.length) {
    const next = nodes.find((n) => !placed.has(n) && (deps.get(n) ?? []).every((d) => placed.has(d) || !nodes.includes(d)));
    if (next === undefined) throw new Error('topologicalOrder: the graph has a cycle (call findCycles first)');
    placed.add(next);
    order.push(next);
  }
  return order;
}
