// Independent FHIR R4 validator: `node validate.mjs FILE...`.
//
// A FILE ending in .json holds one resource or a Bundle (each entry's resource is validated on its own, the
// Bundle itself for its own elements); any other FILE is NDJSON, one resource per line, read as a stream.
// Every resource is validated against its base definition and against its profiles (see fhir_definitions.mjs).
// Prints one JSON document:
//   {"checked": N, "by_type": {type: n}, "unresolved_profiles": {url: n},
//    "problems": [{file, line, entry, resourceType, id, profile, severity, expression, message}]}
// where line is the NDJSON line (1-based) and entry the Bundle entry index (0-based); profile is null for
// the base definition. Exit status: 0 without error-severity problems, 1 with, 2 on bad usage.
//
// Large inputs are validated by worker threads (env VALIDATE_WORKERS, default one per CPU up to 4), in batches of
// lines; the report is the same, in file and line order.
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { loadDefinitions, validateWithProfiles } from './fhir_definitions.mjs';

const BATCH_LINES = 500;
// Below this much input, starting workers (each loads the definitions, ~1 s) costs more than it saves.
const PARALLEL_FROM_BYTES = 8 * 1024 * 1024;

const emptyReport = () => ({ checked: 0, by_type: {}, unresolved_profiles: {}, problems: [] });

function check(report, resource, where, skipExpression) {
  if (resource === null || typeof resource !== 'object' || typeof resource.resourceType !== 'string') {
    const message = 'not a FHIR resource (no resourceType)';
    report.problems.push({ ...where, resourceType: null, id: null, profile: null, severity: 'error', expression: '', message });
    return;
  }
  report.checked += 1;
  report.by_type[resource.resourceType] = (report.by_type[resource.resourceType] ?? 0) + 1;
  const { issues, unresolved } = validateWithProfiles(resource);
  for (const url of unresolved) {
    report.unresolved_profiles[url] = (report.unresolved_profiles[url] ?? 0) + 1;
  }
  for (const issue of issues) {
    if (!skipExpression?.test(issue.expression)) {
      report.problems.push({ ...where, resourceType: resource.resourceType, id: resource.id ?? null, ...issue });
    }
  }
}

function parseError(report, where, err) {
  const message = `invalid JSON: ${err.message}`;
  report.problems.push({ ...where, resourceType: null, id: null, profile: null, severity: 'error', expression: '', message });
}

// One unit of work: a whole .json file, or a batch of NDJSON lines.
function runBatch(batch) {
  const report = emptyReport();
  if (batch.lines === undefined) {
    checkJsonFile(report, batch.file);
    return report;
  }
  batch.lines.forEach((text, i) => {
    const where = { file: batch.file, line: batch.firstLine + i, entry: null };
    if (!text.trim()) {
      return;
    }
    let resource;
    try {
      resource = JSON.parse(text);
    } catch (err) {
      parseError(report, where, err);
      return;
    }
    check(report, resource, where);
  });
  return report;
}

function checkJsonFile(report, file) {
  const where = { file, line: null, entry: null };
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    parseError(report, where, err);
    return;
  }
  if (doc?.resourceType !== 'Bundle') {
    check(report, doc, where);
    return;
  }
  // The entries are validated one by one below (with their profiles); the Bundle pass would repeat their
  // base-definition issues.
  check(report, doc, where, /^Bundle\.entry\[\d+\]\.resource/);
  (doc.entry ?? []).forEach((entry, index) => {
    if (entry.resource !== undefined) {
      check(report, entry.resource, { file, line: null, entry: index });
    }
  });
}

function merge(total, part) {
  total.checked += part.checked;
  for (const key of ['by_type', 'unresolved_profiles']) {
    for (const [name, n] of Object.entries(part[key])) {
      total[key][name] = (total[key][name] ?? 0) + n;
    }
  }
  total.problems.push(...part.problems);
}

// Runs batches inline (workers = 0) or on worker threads, a bounded number in flight; results keep batch order.
function makePool(workers) {
  const results = [];
  const pending = new Set();
  const idle = [];
  const waiting = [];
  for (let i = 0; i < workers; i++) {
    const worker = new Worker(new URL(import.meta.url));
    worker.on('error', (err) => {
      process.stderr.write(`validator worker failed: ${err.stack}\n`);
      process.exit(3);
    });
    idle.push(worker);
  }
  if (workers === 0) {
    loadDefinitions();
  }
  const nextWorker = () => (idle.length > 0 ? Promise.resolve(idle.pop()) : new Promise((r) => waiting.push(r)));
  const release = (worker) => (waiting.length > 0 ? waiting.shift()(worker) : idle.push(worker));
  return {
    async submit(batch) {
      const index = results.length;
      results.push(undefined);
      if (workers === 0) {
        results[index] = runBatch(batch);
        return;
      }
      const worker = await nextWorker();
      const done = new Promise((resolve) => {
        worker.once('message', (report) => {
          results[index] = report;
          release(worker);
          pending.delete(done);
          resolve();
        });
      });
      pending.add(done);
      worker.postMessage(batch);
    },
    async finish() {
      await Promise.all(pending);
      await Promise.all(idle.map((w) => w.terminate()));
      const total = emptyReport();
      results.forEach((part) => merge(total, part));
      return total;
    },
  };
}

async function submitNdjson(pool, file) {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let batch = { file, firstLine: 1, lines: [] };
  for await (const text of lines) {
    batch.lines.push(text);
    if (batch.lines.length === BATCH_LINES) {
      await pool.submit(batch);
      batch = { file, firstLine: batch.firstLine + BATCH_LINES, lines: [] };
    }
  }
  if (batch.lines.length > 0) {
    await pool.submit(batch);
  }
}

async function main(files) {
  const bytes = files.reduce((sum, file) => sum + statSync(file).size, 0);
  const wanted = Number(process.env.VALIDATE_WORKERS ?? Math.min(availableParallelism(), 4));
  const pool = makePool(bytes >= PARALLEL_FROM_BYTES && wanted > 1 ? wanted : 0);
  for (const file of files) {
    if (file.endsWith('.json')) {
      await pool.submit({ file });
    } else {
      await submitNdjson(pool, file);
    }
  }
  const report = await pool.finish();
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exitCode = report.problems.some((p) => p.severity === 'error' || p.severity === 'fatal') ? 1 : 0;
}

if (isMainThread) {
  const files = process.argv.slice(2);
  const unreadable = files.filter((file) => !existsSync(file));
  if (files.length === 0 || unreadable.length > 0) {
    const missing = unreadable.length > 0 ? `no such file: ${unreadable.join(', ')}\n` : '';
    process.stderr.write(`${missing}usage: node validate.mjs FILE...  (NDJSON, or .json resource/Bundle)\n`);
    process.exit(2);
  }
  await main(files);
} else {
  loadDefinitions();
  parentPort.on('message', (batch) => parentPort.postMessage(runBatch(batch)));
}
