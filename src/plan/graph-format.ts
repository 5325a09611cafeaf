// A plan's stage graph as Mermaid (renders in GitHub markdown) or Graphviz dot.
import type { PlannedStage } from './types.js';

export type GraphFormat = 'mermaid' | 'dot';

/** What the graph needs of a plan (a Plan or checked stage instances both fit). */
export interface GraphInput {
  name: string;
  stages: Pick<PlannedStage, 'id' | 'kind' | 'params' | 'dependsOn' | 'models' | 'datasets'>[];
}

export function planGraph(plan: GraphInput, format: GraphFormat): string {
  const stages = plan.stages;
  const index = new Map(stages.map((s, i) => [s.id, i]));
  const modelNodes = [...new Set(stages.flatMap((s) => Object.keys(s.models).filter((m) => !index.has(m))))];
  const datasetNodes = [...new Set(stages.flatMap((s) => Object.keys(s.datasets)))];
  const direct = (s: GraphInput['stages'][number]): string[] => {
    // Models a stage names itself (not those it inherits through groups/scores/importance).
    const text = JSON.stringify(s.params);
    return Object.keys(s.models).filter((m) => text.includes(JSON.stringify(m)));
  };
  if (format === 'mermaid') {
    const lines = ['flowchart TD'];
    modelNodes.forEach((m, i) => lines.push(`  m${i}[("${m}")]`));
    datasetNodes.forEach((d, i) => lines.push(`  d${i}[/"${d}"/]`));
    stages.forEach((s, i) => lines.push(`  s${i}["${s.id}<br/><small>${s.kind}</small>"]`));
    stages.forEach((s, i) => {
      for (const m of direct(s)) lines.push(`  m${modelNodes.indexOf(m)} --> s${i}`);
      for (const d of Object.keys(s.datasets)) lines.push(`  d${datasetNodes.indexOf(d)} --> s${i}`);
      for (const dep of s.dependsOn) lines.push(`  s${index.get(dep)} --> s${i}`);
    });
    return lines.join('\n') + '\n';
  }
  const q = (s: string): string => JSON.stringify(s);
  const lines = [`digraph ${q(plan.name)} {`, '  rankdir=TB;', '  node [fontname="Helvetica"];'];
  for (const m of modelNodes) lines.push(`  ${q(`model:${m}`)} [label=${q(m)}, shape=cylinder];`);
  for (const d of datasetNodes) lines.push(`  ${q(`dataset:${d}`)} [label=${q(d)}, shape=note];`);
  for (const s of stages) lines.push(`  ${q(s.id)} [label=${q(`${s.id}\n${s.kind}`)}, shape=box];`);
  for (const s of stages) {
    for (const m of direct(s)) lines.push(`  ${q(`model:${m}`)} -> ${q(s.id)};`);
    for (const d of Object.keys(s.datasets)) lines.push(`  ${q(`dataset:${d}`)} -> ${q(s.id)};`);
    for (const dep of s.dependsOn) lines.push(`  ${q(dep)} -> ${q(s.id)};`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
