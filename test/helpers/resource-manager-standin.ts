import { createServer } from 'node:http';
import { serveOnLoopback } from './loopback-server.js';
import type { StandinHandle } from './oauth-standin.js';

/** Scopes that may read a project (`resourcemanager.projects.get`). */
const ACCEPTED = ['https://www.googleapis.com/auth/cloud-platform', 'https://www.googleapis.com/auth/cloud-platform.read-only'];

export interface ResourceManagerStandin {
  /** For TOKEND_RESOURCE_MANAGER_URL. */
  endpoint: string;
  /** Every request: the path, the scope of its token at the OAuth stand-in, and the status answered. */
  requests: Array<{ path: string; scope: string | undefined; status: number }>;
  stop(): Promise<void>;
}

/**
 * Cloud Resource Manager's `GET /v1/projects/{projectId}`, shaped as Google answers it: 401 for a
 * token that is not active at the OAuth stand-in, 403 for a token without a scope that may read
 * projects and for a project it does not hold (Google does not tell the two apart).
 */
export async function startResourceManagerStandin(oauth: StandinHandle, projects: Record<string, string>): Promise<ResourceManagerStandin> {
  const requests: ResourceManagerStandin['requests'] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://crm.local').pathname;
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      const introspection = token === undefined ? undefined : await oauth.introspect(token).catch(() => undefined);
      const scopes = introspection?.active === true ? (introspection.scope ?? '').split(' ') : [];
      const projectId = /^\/v1\/projects\/([^/]+)$/.exec(path)?.[1];
      const projectNumber = projectId === undefined ? undefined : projects[decodeURIComponent(projectId)];
      const status =
        introspection?.active !== true ? 401 : !scopes.some((scope) => ACCEPTED.includes(scope)) ? 403 : projectId === undefined ? 404 : projectNumber === undefined ? 403 : 200;
      requests.push({ path, scope: introspection?.scope, status });
      const body =
        status === 200
          ? { projectNumber, projectId: decodeURIComponent(projectId!), lifecycleState: 'ACTIVE', name: decodeURIComponent(projectId!) }
          : { error: { code: status, message: 'The caller does not have permission (stand-in text that must not be shown)', status: status === 401 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED' } };
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body));
    })();
  });
  return { ...(await serveOnLoopback(server)), requests };
}
