// Zero-shot prompt templates (DESIGN.md, lm-evaluation-harness at LLM-Pruner's pinned commit). A template turns one
// multiple-choice record into one (context, continuation) pair per choice; the scorer never looks at templates.
import { LopperError } from '../errors/lopper-error.js';
import type { MultipleChoiceRecord } from '../data/jsonl.js';

export interface ChoiceRequest {
  context: string;
  continuation: string;
}

export type ZeroShotMetric = 'acc' | 'acc_norm';

export interface Template {
  name: string;
  /** Metrics this template defines. WinoGrande's partial scoring shares one continuation, so it has acc only. */
  metrics: readonly ZeroShotMetric[];
  /** The metric LLM-Pruner's tables report for the task (acc for BoolQ and WinoGrande, acc_norm for ARC, PIQA, OBQA, HellaSwag). */
  reported: ZeroShotMetric;
  requests(record: MultipleChoiceRecord): ChoiceRequest[];
}

/** A template as written in a recipe: a built-in name or `{ context, continuation }` with {question} / {choice}. */
export type TemplateSpec = string | { context: string; continuation: string };

const BOTH: readonly ZeroShotMetric[] = ['acc', 'acc_norm'];

// lm-eval's ARC, PIQA, BoolQ-without-passage and SIQA prompts: "Question: …\nAnswer:" + " " + choice.
function generic(name: string, reported: ZeroShotMetric): Template {
  return {
    name,
    metrics: BOTH,
    reported,
    requests: (r) => r.choices.map((choice) => ({ context: `Question: ${r.question}\nAnswer:`, continuation: ` ${choice}` })),
  };
}

const openbookqa: Template = {
  name: 'openbookqa',
  metrics: BOTH,
  reported: 'acc_norm',
  requests: (r) => r.choices.map((choice) => ({ context: r.question, continuation: ` ${choice}` })),
};

// lm-eval winogrande.py partial_context / partial_target: the option fills the blank inside the context, and every
// option is scored on the same continuation, " " + the rest of the sentence after "_" stripped.
const winogrande: Template = {
  name: 'winogrande',
  metrics: ['acc'],
  reported: 'acc',
  requests: (r) => {
    const blank = r.question.indexOf('_');
    if (blank < 0) {
      throw new LopperError('LP5005', `record on line ${r.line} has no "_" blank in its sentence: ${JSON.stringify(r.question)}`, {
        hint: 'The winogrande template expects the sentence in "question" with "_" where an option goes.',
      });
    }
    const continuation = ' ' + r.question.slice(blank + 1).trim();
    return r.choices.map((choice) => ({ context: r.question.slice(0, blank) + choice, continuation }));
  },
};

// lm-eval boolq.py: "{passage}\nQuestion: {question}?\nAnswer:" with " no" / " yes" (label 0 = false). Records
// without a passage (the LLM-Adapters copy in ../shared has none) keep the generic question prompt and their choices.
const boolq: Template = {
  name: 'boolq',
  metrics: BOTH,
  reported: 'acc',
  requests: (r) => r.passage === undefined
    ? r.choices.map((choice) => ({ context: `Question: ${r.question}\nAnswer:`, continuation: ` ${choice}` }))
    : [' no', ' yes'].map((continuation) => ({ context: `${r.passage}\nQuestion: ${r.question}?\nAnswer:`, continuation })),
};

/** lm-eval hellaswag.py preprocess(): WikiHow's bracket artifacts removed, double spaces collapsed once. */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(' [title]', '. ').replace(/\[.*?\]/g, '').replaceAll('  ', ' ');
}

/** Python's str.capitalize(): the first character upper case, the rest lower case. */
function capitalize(text: string): string {
  const [first = '', ...rest] = [...text];
  return first.toUpperCase() + rest.join('').toLowerCase();
}

// lm-eval hellaswag.py: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), each ending
// preprocessed, continuation " " + ending. Records already flattened to {question, choices} are preprocessed as is.
const hellaswag: Template = {
  name: 'hellaswag',
  metrics: BOTH,
  reported: 'acc_norm',
  requests: (r) => {
    const h = r.hellaswag;
    const query = hellaswagPreprocess(h ? `${h.activityLabel}: ${h.ctxA} ${capitalize(h.ctxB)}` : r.question);
    return r.choices.map((ending) => ({ context: query, continuation: ` ${hellaswagPreprocess(ending)}` }));
  },
};

export const builtinTemplates: ReadonlyMap<string, Template> = new Map(
  [
    generic('generic', 'acc'),
    generic('arc_easy', 'acc_norm'),
    generic('arc_challenge', 'acc_norm'),
    generic('piqa', 'acc_norm'),
    boolq,
    generic('social_iqa', 'acc'),
    openbookqa,
    hellaswag,
    winogrande,
  ].map((t) => [t.name, t]),
);

const PLACEHOLDER = /\{\{|\}\}|\{([^{}]*)\}/g;

/** Renders `{question}` / `{choice}` in a user template; `{{` and `}}` are literal braces. */
export function renderTemplateText(text: string, values: { question: string; choice: string }): string {
  return text.replace(PLACEHOLDER, (match, name: string | undefined) => {
    if (match === '{{') return '{';
    if (match === '}}') return '}';
    if (name === 'question' || name === 'choice') return values[name];
    throw new LopperError('LP5004', `unknown placeholder {${name}} in zero-shot template ${JSON.stringify(text)}`, {
      hint: 'User templates may use {question} and {choice}; write {{ and }} for literal braces.',
    });
  });
}

function userTemplate(spec: { context: string; continuation: string }): Template {
  // Validate once up front, so a typo fails before any model is loaded.
  renderTemplateText(spec.context, { question: '', choice: '' });
  renderTemplateText(spec.continuation, { question: '', choice: '' });
  return {
    name: 'custom',
    metrics: BOTH,
    reported: 'acc',
    requests: (r) =>
      r.choices.map((choice) => ({
        context: renderTemplateText(spec.context, { question: r.question, choice }),
        continuation: renderTemplateText(spec.continuation, { question: r.question, choice }),
      })),
  };
}

/** The template a dataset entry names (absent = generic). */
export function resolveTemplate(spec: TemplateSpec | undefined): Template {
  if (spec === undefined) return builtinTemplates.get('generic')!;
  if (typeof spec === 'object' && spec !== null && typeof spec.context === 'string' && typeof spec.continuation === 'string') {
    return userTemplate(spec);
  }
  const template = typeof spec === 'string' ? builtinTemplates.get(spec) : undefined;
  if (!template) {
    throw new LopperError('LP5003', `unknown zero-shot template ${JSON.stringify(spec)}`, {
      hint: `Use one of ${[...builtinTemplates.keys()].join(', ')}, or { context: "...{question}...", continuation: " {choice}" }.`,
    });
  }
  return template;
}
