import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { serveOnLoopback } from './loopback-server.js';
import type { StandinHandle } from './oauth-standin.js';

/** Scopes BigQuery accepts for a query job. */
const ACCEPTED = ['https://www.googleapis.com/auth/bigquery', 'https://www.googleapis.com/auth/cloud-platform'];

export interface BigQueryStandin {
  /** For `apiEndpoint` / BIGQUERY_API_ENDPOINT. */
  endpoint: string;
  /** Every request: method, path, and whether its token was accepted. */
  requests: Array<{ method: string; path: string; authorized: boolean }>;
  stop(): Promise<void>;
}

/**
 * A BigQuery-shaped stand-in for the query path of the Node client and bq (jobs.insert, jobs.get,
 * jobs.query, getQueryResults). It answers only when the bearer token is active at the OAuth stand-in
 * (introspection) and carries a scope BigQuery accepts; every query returns William's total.
 */
export async function startBigQueryStandin(oauth: StandinHandle): Promise<BigQueryStandin> {
  const requests: BigQueryStandin['requests'] = [];
  const jobs = new Map<string, { projectId: string; query: string }>();
  const server = createServer((req, res) => void handle(req, res));

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://bigquery.local');
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const introspection = token === undefined ? undefined : await oauth.introspect(token).catch(() => undefined);
    const scopes = (introspection?.scope ?? '').split(' ');
    const authorized = introspection?.active === true && scopes.some((scope) => ACCEPTED.includes(scope));
    requests.push({ method: req.method ?? '', path: url.pathname, authorized });
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body));
    if (!authorized) {
      return send(introspection?.active === true ? 403 : 401, {
        error: { code: introspection?.active === true ? 403 : 401, message: introspection?.active === true ? 'Request had insufficient authentication scopes.' : 'Request had invalid authentication credentials.', status: introspection?.active === true ? 'PERMISSION_DENIED' : 'UNAUTHENTICATED' },
      });
    }
    const body = await readJson(req);
    const path = url.pathname.replace(/^\/bigquery\/v2/, '');
    let match: RegExpExecArray | null;
    if (req.method === 'POST' && (match = /^\/projects\/([^/]+)\/jobs$/.exec(path)) !== null) {
      const jobId = (body.jobReference as { jobId?: string } | undefined)?.jobId ?? randomUUID();
      const query = ((body.configuration as { query?: { query?: string } } | undefined)?.query?.query) ?? '';
      jobs.set(jobId, { projectId: match[1]!, query });
      return send(200, job(match[1]!, jobId));
    }
    if (req.method === 'GET' && (match = /^\/projects\/([^/]+)\/jobs\/([^/]+)$/.exec(path)) !== null) {
      return jobs.has(match[2]!) ? send(200, job(match[1]!, match[2]!)) : send(404, { error: { code: 404, message: 'Not found: Job', status: 'NOT_FOUND' } });
    }
    if (req.method === 'POST' && (match = /^\/projects\/([^/]+)\/queries$/.exec(path)) !== null) {
      const jobId = randomUUID();
      jobs.set(jobId, { projectId: match[1]!, query: typeof body.query === 'string' ? body.query : '' });
      return send(200, results(match[1]!, jobId));
    }
    if (req.method === 'GET' && (match = /^\/projects\/([^/]+)\/queries\/([^/]+)$/.exec(path)) !== null) {
      return send(200, results(match[1]!, match[2]!));
    }
    return send(404, { error: { code: 404, message: `no such method: ${req.method} ${url.pathname}`, status: 'NOT_FOUND' } });
  };

  return { ...(await serveOnLoopback(server)), requests };
}

function job(projectId: string, jobId: string) {
  return {
    kind: 'bigquery#job',
    id: `${projectId}:US.${jobId}`,
    jobReference: { projectId, jobId, location: 'US' },
    status: { state: 'DONE' },
    statistics: { query: { statementType: 'SELECT', totalBytesProcessed: '0' } },
    configuration: { query: {} },
  };
}

function results(projectId: string, jobId: string) {
  return {
    kind: 'bigquery#queryResponse',
    jobReference: { projectId, jobId, location: 'US' },
    jobComplete: true,
    totalRows: '1',
    schema: { fields: [{ name: 'name', type: 'STRING', mode: 'NULLABLE' }, { name: 'total', type: 'INTEGER', mode: 'NULLABLE' }] },
    rows: [{ f: [{ v: 'William' }, { v: '4010729' }] }],
  };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += (chunk as Buffer).toString();
  try {
    return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    return {};
  }
}
