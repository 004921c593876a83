import { UpstreamRejectedError, UpstreamUnavailableError } from '../errors.js';
import { UpstreamConnectError } from '../net/upstream-fetch.js';
import type { Secret } from '../secret.js';
import { GOOGLE_RESOURCE_MANAGER } from './google-endpoints.js';

/** Where a project's number comes from when nobody configured it. */
export interface ProjectDirectory {
  /** The number of the project `projectId`, read with `accessToken` (its holder must be allowed to see it). */
  projectNumber(projectId: string, accessToken: Secret, signal?: AbortSignal): Promise<string>;
}

export interface ResourceManagerOptions {
  /** Google's by default; another for a private endpoint or a test stand-in. */
  baseUrl?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

const MAX_BODY = 64 * 1024;
const SET_IT = 'set the project number in the config file ("projectNumber") or TOKEND_PROJECT_NUMBER (docs/configuration.md)';

/**
 * Cloud Resource Manager's `projects.get` (v1), for the one field tokend needs: `projectNumber`.
 * One try, time-bounded; the caller decides when to ask again. Upstream text never leaves this module.
 */
export class ResourceManager implements ProjectDirectory {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ResourceManagerOptions = {}) {
    this.baseUrl = options.baseUrl ?? GOOGLE_RESOURCE_MANAGER;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  async projectNumber(projectId: string, accessToken: Secret, signal?: AbortSignal): Promise<string> {
    const url = new URL(`v1/projects/${encodeURIComponent(projectId)}`, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let status: number;
    let text: string;
    try {
      const response = await this.fetchImpl(url, {
        headers: { authorization: `Bearer ${accessToken.reveal()}`, accept: 'application/json' },
        redirect: 'error',
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      const connect = error instanceof UpstreamConnectError ? error : undefined;
      const what = timeout.aborted ? `did not answer within ${this.timeoutMs} ms` : `could not be reached${connect?.route ?? ''}`;
      throw new UpstreamUnavailableError(`the Resource Manager at ${url.host} ${what}`, { hint: `${connect?.hint(url.host) ?? 'check your network connection'}, or ${SET_IT}` });
    }
    if (status === 403 || status === 404) {
      throw new UpstreamRejectedError(`the Resource Manager at ${url.host} does not show project ${projectId} to this account (HTTP ${status})`, {
        hint: `check the project id in the client file, or ${SET_IT}`,
      });
    }
    if (status >= 500 || status === 429) {
      throw new UpstreamUnavailableError(`the Resource Manager at ${url.host} answered HTTP ${status}`, { hint: `tokend asks again later; or ${SET_IT}` });
    }
    const projectNumber = status === 200 ? numberIn(text) : undefined;
    if (projectNumber === undefined) {
      throw new UpstreamRejectedError(`the Resource Manager at ${url.host} answered HTTP ${status} without a project number`, { hint: SET_IT });
    }
    return projectNumber;
  }
}

function numberIn(text: string): string | undefined {
  if (text.length > MAX_BODY) return undefined;
  try {
    const { projectNumber } = JSON.parse(text) as { projectNumber?: unknown };
    return typeof projectNumber === 'string' && /^\d{1,20}$/.test(projectNumber) ? projectNumber : undefined;
  } catch {
    return undefined;
  }
}
