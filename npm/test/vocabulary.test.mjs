// issue 11 §3, issue 20: docs/api.md's table is the one vocabulary. Each name of
// its JS column is checked exactly, with the TypeScript checker over index.d.ts:
// `client.x` is a member of FhirAsyncClient, `job.x` of AsyncJob, `outcome.x` /
// `result.x` of what `job.wait()` resolves to, `report.x` of a stream's file
// report, `error.x` of FhirAsyncError; a bare option is a property of one of
// the options interfaces, with the listed values in its type; `new X({ a })`
// and `f({ a })` take `a`; an error code is the `code` of a declared class; a
// literal after a name is a value of that name's type. Exported values must
// also exist at run time (a declaration alone is not enough).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import * as api from 'fhir-async';

const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
const dtsPath = fileURLToPath(new URL('../index.d.ts', import.meta.url));
/** The fields of the core's error details (`details.serverMessage`), camelCase. */
const coreErrors = ['../../core/src/error.rs', '../../core/src/download/error.rs']
  .map((p) => readFileSync(new URL(p, import.meta.url), 'utf8'))
  .join('\n');
const detailFields = new Set(
  [...coreErrors.matchAll(/^\s+(?:pub )?([a-z_][a-z0-9_]*): /gm)].map((m) => m[1].replace(/_([a-z])/g, (_, c) => c.toUpperCase())),
);

const program = ts.createProgram([dtsPath], { strict: true, noEmit: true, lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], types: [] });
const checker = program.getTypeChecker();
const exported = new Map(checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(dtsPath))).map((s) => [s.name, s]));

/** The declared type of an exported interface, type alias or class (its instances). */
function declaredType(name) {
  const s = exported.get(name);
  assert.ok(s, `index.d.ts exports no ${name}`);
  return checker.getDeclaredTypeOfSymbol(s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
}
/** The type of an exported value (a class's constructor, a function). */
const valueType = (name) => checker.getTypeOfSymbol(exported.get(name));
/** Property `name` of `type` (on any member of a union), or null. */
function prop(type, name) {
  type = checker.getNonNullableType(type);
  const parts = type.isUnion() ? type.types : [type];
  for (const t of parts) {
    const p = checker.getPropertyOfType(t, name);
    if (p) return checker.getTypeOfSymbol(p);
  }
  return null;
}
/** The first parameter types and return types of `type`'s call (or construct) signatures. */
function signatures(type, construct = false) {
  return checker.getSignaturesOfType(checker.getNonNullableType(type), construct ? ts.SignatureKind.Construct : ts.SignatureKind.Call);
}
const firstParams = (sigs) => sigs.map((s) => (s.parameters[0] ? checker.getTypeOfSymbol(s.parameters[0]) : null)).filter(Boolean);
function awaited(type) {
  const t = checker.getAwaitedType(type);
  return t ?? type;
}
/** Whether `type` takes the literal `value` (`'report'`, `true`); `exact`: a plain `string` does not. */
function takes(type, value, exact = false) {
  const parts = type.isUnion() ? type.types : [type];
  return parts.some((t) => {
    if (t.isStringLiteral()) return `'${t.value}'` === value;
    if (value === 'true' || value === 'false') return (t.flags & ts.TypeFlags.BooleanLike) !== 0;
    return !exact && (t.flags & ts.TypeFlags.String) !== 0 && /^'.*'$/.test(value);
  });
}

// The receivers the table writes, and what each one is.
const receivers = {
  client: () => declaredType('FhirAsyncClient'),
  job: () => declaredType('AsyncJob'),
  outcome: () => awaited(signatures(prop(declaredType('AsyncJob'), 'wait'))[0].getReturnType()),
  result: () => awaited(signatures(prop(declaredType('AsyncJob'), 'wait'))[0].getReturnType()),
  report: () => declaredType('StreamFileReport'),
  stream: () => declaredType('ResourceStream'), // what `client.resources` returns
  error: () => declaredType('FhirAsyncError'),
};
const runtimeReceivers = {
  client: api.FhirAsyncClient.prototype,
  job: api.AsyncJob.prototype,
  error: new api.FhirAsyncError('x'),
};
const OPTIONS = ['ClientOptions', 'ExportOptions', 'KickoffOptions', 'ResourceOptions', 'WaitOptions'];

/** The keys of an object literal span (`{ a, b: c, d? }`, nested braces skipped). */
function keysOf(text) {
  const inner = text.trim().replace(/^\{|\}$/g, '');
  const keys = [];
  let depth = 0;
  let cur = '';
  for (const ch of inner + ',') {
    if (ch === '{' || ch === '(') depth++;
    if (ch === '}' || ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      const k = /^\s*([A-Za-z_]\w*)\??/.exec(cur);
      if (k) keys.push(k[1]);
      cur = '';
    } else cur += ch;
  }
  return keys;
}
/** The object-literal argument of a call span (`f({ a, b })`), or null. */
const objectArg = (span) => /\((\{.*\})\)/.exec(span)?.[1] ?? null;

/** Checks one span; `ctx` carries the cell's last receiver and type. Returns a problem or null. */
function checkSpan(span, ctx) {
  if (/[/<]/.test(span) || /^\[/.test(span)) return null; // a User-Agent pattern, a default value
  // A literal: a value of the previous name's type.
  if (/^'[^']*'$/.test(span)) return ctx.type && takes(ctx.type, span) ? null : `${span} is no value of the name before it`;
  // An object shape after a call: the keys of what it returns.
  if (span.startsWith('{')) {
    if (!ctx.type) return `${span}: no call before it`;
    const missing = keysOf(span).filter((k) => !prop(ctx.type, k));
    return missing.length ? `${span}: no ${missing.join(', ')}` : null;
  }
  // An error code: the `code` of a declared class.
  if (/^[a-z]+(_[a-z]+)+$|^aborted$/.test(span)) {
    const ok = [...exported.keys()].some((n) => /Error$/.test(n) && takes(prop(declaredType(n), 'code') ?? declaredType(n), `'${span}'`, true));
    return ok ? null : `code ${span}`;
  }
  const m = /^(new\s+)?([A-Za-z_]\w*)((?:\.\w+)*)\s*(\(.*\))?\s*(?::\s*(.*))?$/.exec(span);
  if (!m) return `unparsed ${span}`;
  const [, isNew, head, path, call, values] = m;
  const members = path.split('.').filter(Boolean);
  // `details.x` / `error.details.x`: a field of the core's error details.
  const details = head === 'details' ? members : head === 'error' && members[0] === 'details' ? members.slice(1) : null;
  if (details) {
    ctx.receiver = 'error';
    if (head === 'error' && !prop(receivers.error(), 'details')) return 'error.details';
    return details.every((f) => detailFields.has(f)) ? null : `${span}: no such field in the core's errors`;
  }
  let type;
  if (head in receivers) {
    ctx.receiver = head;
    type = receivers[head]();
    for (const name of members) {
      const next = prop(type, name);
      if (!next) return `${head}.${name}`;
      if (type === receivers[head]() && runtimeReceivers[head] && !(name in runtimeReceivers[head])) return `${head}.${name} (not at run time)`;
      type = next;
    }
  } else if (exported.has(head) && !members.length) {
    const s = exported.get(head);
    if (s.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Function | ts.SymbolFlags.Value) && !(head in api)) return `${head} (not at run time)`;
    type = s.flags & ts.SymbolFlags.Value ? valueType(head) : declaredType(head);
  } else if (head in globalThis && !members.length) {
    return null; // a platform name (AbortSignal)
  } else if (!members.length && ctx.receiver && prop(receivers[ctx.receiver](), head)) {
    // a bare name after `job.x`: another member of the same receiver (a deprecated alias)
    type = prop(receivers[ctx.receiver](), head);
    if (runtimeReceivers[ctx.receiver] && !(head in runtimeReceivers[ctx.receiver])) return `${head} (not at run time)`;
  } else if (!members.length && call && prop(receivers.job(), head)) {
    type = prop(receivers.job(), head); // `wait({ ... })`: the job's
  } else if (!members.length) {
    // an option: a property of one of the options interfaces
    const found = OPTIONS.map((o) => prop(declaredType(o), head)).filter(Boolean);
    if (!found.length) return `option ${head}`;
    if (values) {
      if (values.startsWith('{')) {
        const missing = keysOf(values).filter((k) => !found.some((t) => prop(t, k)));
        return missing.length ? `${head}: { ${missing.join(', ')} }` : null;
      }
      const bad = values.split('|').map((v) => v.trim()).filter((v) => !found.some((t) => takes(t, v)));
      return bad.length ? `${head}: ${bad.join(', ')}` : null;
    }
    ctx.type = found[0];
    return null;
  } else {
    return `${span}: unknown name ${head}`;
  }
  if (call) {
    const sigs = signatures(type, Boolean(isNew));
    if (!sigs.length) return `${span}: not callable`;
    const arg = objectArg(span);
    if (arg) {
      const params = firstParams(sigs);
      const missing = keysOf(arg).filter((k) => !params.some((p) => prop(p, k)));
      if (missing.length) return `${span}: takes no ${missing.join(', ')}`;
      // a call inside the argument (`auth: backendServices({ ... })`) is checked too
      for (const [, inner] of arg.matchAll(/:\s*([A-Za-z_]\w*\(\{[^}]*\}\))/g)) {
        const bad = checkSpan(inner, {});
        if (bad) return bad;
      }
    }
    type = isNew ? sigs[0].getReturnType() : awaited(sigs[0].getReturnType());
  }
  ctx.type = type;
  return null;
}

/** The JS column's code spans, by concept. */
function jsCells() {
  const rows = doc.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| concept') && !l.startsWith('|---'));
  return rows.map((row) => {
    // `\|` inside a cell is a literal bar
    const cells = row.replace(/\\\|/g, '\u0000').split('|').map((c) => c.trim().replace(/\u0000/g, '|'));
    return { concept: cells[1], js: cells[3] ?? '' };
  });
}

test('issue 20: every JS name of docs/api.md is declared on the right interface', () => {
  const cells = jsCells();
  assert.ok(cells.length > 30, `parsed ${cells.length} rows`);
  const missing = [];
  let names = 0;
  for (const { concept, js } of cells) {
    const ctx = {};
    for (const [, span] of js.matchAll(/`([^`]+)`/g)) {
      names++;
      const bad = checkSpan(span, ctx);
      if (bad) missing.push(`${concept}: ${bad}`);
    }
  }
  assert.ok(names > 40, `checked ${names} names`);
  assert.deepEqual(missing, []);
});

test('the check refuses names that are not there', () => {
  const wrong = [
    'client.exportAll(opts)',
    'job.pollLater()',
    'report.rangeResume',
    'outcome.statuses',
    'maxPerOrigins',
    "onInvalidLine: 'report' | 'skip'",
    "countCheck: 'loose'",
    'retry: { minWait }',
    'new FhirAsyncClient({ baseUrl, tokens })',
    'backendServices({ clientId, keys })',
    'error.details.serverWords',
    'no_such_code',
    'NoSuchError',
  ];
  for (const span of wrong) assert.notEqual(checkSpan(span, {}), null, span);
  // a literal checks against the name before it, in the same cell
  const ctx = {};
  assert.equal(checkSpan('outcome.status', ctx), null);
  assert.notEqual(checkSpan("'finished'", ctx), null);
});
