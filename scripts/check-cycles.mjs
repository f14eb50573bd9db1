#!/usr/bin/env node
// Fails when the modules under src/ import each other in a cycle (type-only imports included: a cycle
// of types is still two modules that cannot be understood apart). Run by `npm run lint`.
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const root = path.resolve(process.argv[2] ?? 'src');

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return walk(p);
    return /\.tsx?$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

function resolve(from, spec) {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base, `${base}.ts`, `${base}.tsx`, path.join(base, 'index.ts')]) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  return null;
}

function importsOf(file) {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out = new Set();
  const visit = (node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const target = resolve(file, node.moduleSpecifier.text);
      if (target && target.startsWith(root)) out.add(target);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      const target = resolve(file, node.arguments[0].text);
      if (target && target.startsWith(root)) out.add(target);
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return [...out];
}

const files = walk(root);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

// Tarjan's strongly connected components: every component of more than one module (or a module that
// imports itself) is a cycle.
let index = 0;
const stack = [];
const state = new Map();
const cycles = [];
function strong(v) {
  state.set(v, { index, low: index, onStack: true });
  index++;
  stack.push(v);
  for (const w of graph.get(v) ?? []) {
    if (!state.has(w)) {
      strong(w);
      state.get(v).low = Math.min(state.get(v).low, state.get(w).low);
    } else if (state.get(w).onStack) {
      state.get(v).low = Math.min(state.get(v).low, state.get(w).index);
    }
  }
  if (state.get(v).low === state.get(v).index) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      state.get(w).onStack = false;
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(comp);
  }
}
for (const f of files) if (!state.has(f)) strong(f);

const rel = (f) => path.relative(process.cwd(), f);
if (cycles.length) {
  console.error(`import cycles under ${rel(root)}: ${cycles.length}`);
  for (const comp of cycles) {
    const inComp = new Set(comp);
    console.error(`- ${comp.length} modules:`);
    for (const f of comp.sort()) {
      const edges = (graph.get(f) ?? []).filter((t) => inComp.has(t)).map(rel);
      console.error(`    ${rel(f)} -> ${edges.join(', ')}`);
    }
  }
  process.exit(1);
}
console.log(`no import cycles among ${files.length} modules under ${rel(root)}`);
