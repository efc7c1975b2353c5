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
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { loadDefinitions, validateWithProfiles } from './fhir_definitions.mjs';

const report = { checked: 0, by_type: {}, unresolved_profiles: {}, problems: [] };

function check(resource, where, skipExpression) {
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
    if (skipExpression?.test(issue.expression)) {
      continue;
    }
    report.problems.push({ ...where, resourceType: resource.resourceType, id: resource.id ?? null, ...issue });
  }
}

function parseError(where, err) {
  const message = `invalid JSON: ${err.message}`;
  report.problems.push({ ...where, resourceType: null, id: null, profile: null, severity: 'error', expression: '', message });
}

function checkJsonFile(file) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    parseError({ file, line: null, entry: null }, err);
    return;
  }
  if (doc?.resourceType !== 'Bundle') {
    check(doc, { file, line: null, entry: null });
    return;
  }
  // The entries are validated one by one below (with their profiles); the Bundle pass would repeat their
  // base-definition issues.
  check(doc, { file, line: null, entry: null }, /^Bundle\.entry\[\d+\]\.resource/);
  (doc.entry ?? []).forEach((entry, index) => {
    if (entry.resource !== undefined) {
      check(entry.resource, { file, line: null, entry: index });
    }
  });
}

async function checkNdjsonFile(file) {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line += 1;
    if (!text.trim()) {
      continue;
    }
    const where = { file, line, entry: null };
    let resource;
    try {
      resource = JSON.parse(text);
    } catch (err) {
      parseError(where, err);
      continue;
    }
    check(resource, where);
  }
}

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: node validate.mjs FILE...  (NDJSON, or .json resource/Bundle)\n');
  process.exit(2);
}
loadDefinitions();
for (const file of files) {
  if (file.endsWith('.json')) {
    checkJsonFile(file);
  } else {
    await checkNdjsonFile(file);
  }
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = report.problems.some((p) => p.severity === 'error' || p.severity === 'fatal') ? 1 : 0;
