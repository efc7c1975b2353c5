// A real FHIR R4 server for the tests: Medplum's FHIR router over its in-memory repository, behind node:http.
//
//   node server.mjs [PORT]      PORT (or env PORT) 0 or absent = a free port
//   env VALIDATE=1              validate every written resource (base definition + profiles, as validate.mjs);
//                               a resource with an error is rejected with 400 and an OperationOutcome
//   env STRICT_TRANSACTIONS=1   Medplum's transaction mode (see below)
//
// Prints `READY http://127.0.0.1:<port>/fhir/R4` on stdout once listening. Besides the FHIR API under that base,
// `POST /admin/reset` empties the repository (204), so that one server process serves a whole test session.
// Limits (Medplum's in-memory repository): nothing persists, a transaction is processed entry by entry (a failing
// entry does not fail the others, nor the request), client-chosen ids are accepted on update-as-create.
import http from 'node:http';
import { badRequest, getStatus, normalizeOperationOutcome, OperationOutcomeError } from '@medplum/core';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { loadDefinitions, validateWithProfiles } from './fhir_definitions.mjs';

const BASE_PATH = '/fhir/R4';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const validating = process.env.VALIDATE === '1';

class ValidatingRepository extends MemoryRepository {
  check(resource) {
    const errors = validateWithProfiles(resource).issues.filter((i) => i.severity === 'error');
    if (errors.length > 0) {
      throw new OperationOutcomeError({
        resourceType: 'OperationOutcome',
        issue: errors.map((i) => ({
          severity: 'error',
          code: 'invalid',
          details: { text: i.profile ? `${i.message} (profile ${i.profile})` : i.message },
          expression: i.expression ? [i.expression] : undefined,
        })),
      });
    }
  }

  async createResource(resource, options) {
    this.check(resource);
    return super.createResource(resource, options);
  }

  async updateResource(resource, options) {
    this.check(resource);
    return super.updateResource(resource, options);
  }
}

loadDefinitions();
const router = new FhirRouter();
const repo = validating ? new ValidatingRepository() : new MemoryRepository();

function send(res, status, body, headers = {}) {
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { ...headers, ...(payload ? { 'Content-Type': FHIR_JSON } : {}) });
  res.end(payload);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.trim() ? JSON.parse(text) : undefined;
}

async function handle(req, res, baseUrl) {
  if (req.method === 'POST' && req.url === '/admin/reset') {
    repo.clear();
    send(res, 204);
    return;
  }
  if (req.url !== BASE_PATH && !req.url.startsWith(`${BASE_PATH}/`) && !req.url.startsWith(`${BASE_PATH}?`)) {
    send(res, 404, normalizeOperationOutcome(new Error(`No FHIR endpoint at ${req.url}; the base is ${baseUrl}`)));
    return;
  }
  let body;
  try {
    body = await readBody(req);
  } catch (err) {
    send(res, 400, badRequest(`Invalid JSON body: ${err.message}`));
    return;
  }
  // Medplum's router takes the URL relative to the base (only `url`: it rejects requests that set `pathname`).
  // `transactions: true` makes a transaction Bundle run as one, with the limits of Medplum's PostgreSQL server:
  // at most 50 updates, and at most 8 entries once a conditional update needs serializable isolation. Those
  // limits protect a database this in-memory repository does not have (it is not atomic either), and no
  // HAPI server has them, so by default (STRICT_TRANSACTIONS unset) a transaction is processed entry by entry
  // like Medplum's batch: urn:uuid references rewritten, one outcome per entry, `transaction-response`.
  const fhirRequest = {
    method: req.method,
    url: req.url.slice(BASE_PATH.length) || '/',
    body,
    params: {},
    query: {},
    headers: req.headers,
    config: { transactions: process.env.STRICT_TRANSACTIONS === '1' },
  };
  const [outcome, resource] = await router.handleRequest(fhirRequest, repo);
  const status = getStatus(outcome);
  // Medplum's in-memory search leaves out the fullUrl that FHIR requires of each search result.
  if (resource?.resourceType === 'Bundle' && resource.type === 'searchset') {
    for (const entry of resource.entry ?? []) {
      entry.fullUrl ??= `${baseUrl}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
  const headers = {};
  if (resource?.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource?.id) {
    headers.Location = `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
  }
  send(res, status, resource ?? outcome, headers);
}

const server = http.createServer((req, res) => {
  handle(req, res, server.baseUrl).catch((err) => {
    process.stderr.write(`${err.stack}\n`);
    send(res, 500, normalizeOperationOutcome(err));
  });
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
server.listen(port, '127.0.0.1', () => {
  server.baseUrl = `http://127.0.0.1:${server.address().port}${BASE_PATH}`;
  process.stdout.write(`READY ${server.baseUrl}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
