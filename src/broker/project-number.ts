import type { Clock } from '../clock.js';
import { isTokendError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ProjectDirectory } from '../oauth/resource-manager.js';
import type { ProjectNumberStatus } from '../protocol.js';
import type { AccountRegistry } from './accounts.js';
import type { Broker } from './broker.js';
import { ScopeSet } from './scopes.js';
import { SingleFlight } from './single-flight.js';

export type { ProjectNumberStatus };

export interface ProjectNumberDeps {
  /** From the configuration: used as is, nothing is looked up. */
  configured: string | undefined;
  broker: Pick<Broker, 'getToken' | 'registry'>;
  directory: ProjectDirectory;
  clock: Clock;
  logger: Logger;
  /** The ready-to-paste way to configure it, for every "unknown". */
  howToSet: string;
  /** How long a metadata request waits for a lookup in progress (gcloud gives up after 3 s). */
  waitMs?: number;
}

/** Reading a project needs one of these; the read-only one is asked for when the user granted it. */
const LOOKUP_SCOPES = ['https://www.googleapis.com/auth/cloud-platform.read-only', 'https://www.googleapis.com/auth/cloud-platform'];
/** A failed lookup is not retried sooner: permissions and networks do not change by the second. */
const RETRY_AFTER_MS = 5 * 60_000;

/**
 * The number of the default account's project, for `project/numeric-project-id`: configured, or
 * looked up once from the Resource Manager with the account's own token and remembered for the
 * daemon's life (per project id, so a new default account with another project is looked up anew).
 */
export class ProjectNumbers {
  private readonly found = new Map<string, string>();
  private readonly failed = new Map<string, { at: number; reason: string; hint: string }>();
  private readonly lookups = new SingleFlight<string | undefined>();
  private readonly waitMs: number;

  private configured: string | undefined;

  constructor(private readonly deps: ProjectNumberDeps) {
    this.waitMs = deps.waitMs ?? 2_000;
    this.configured = deps.configured;
  }

  /** A configuration reload: a configured number wins from now on; none means look it up again. */
  configure(projectNumber: string | undefined): void {
    this.configured = projectNumber;
  }

  /** The number now, without waiting (directory listings, status). */
  known(): string | undefined {
    if (this.configured !== undefined) return this.configured;
    const projectId = this.projectId();
    return projectId === undefined ? undefined : this.found.get(projectId);
  }

  /** The number, starting or joining a lookup and waiting for it at most `waitMs`. */
  async resolve(): Promise<string | undefined> {
    const known = this.known();
    if (known !== undefined) return known;
    const lookup = this.lookUp();
    if (lookup === undefined) return undefined;
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = this.deps.clock.setTimer(this.waitMs, () => resolve(undefined))));
    try {
      return await Promise.race([lookup, timeout]);
    } finally {
      timer?.cancel();
    }
  }

  /** Starts a lookup if one is due, without waiting: at start, so gcloud's first call is answered at once. */
  warm(): void {
    if (this.known() === undefined) void this.lookUp();
  }

  /** What is known, for `tokend status`; a lookup that is due is started first, so "looking" is true when said. */
  status(): ProjectNumberStatus {
    const { configured } = this;
    if (configured !== undefined) return { state: 'configured', projectNumber: configured };
    this.warm();
    const projectId = this.projectId();
    if (projectId === undefined) return { state: 'unknown', ...this.noProject() };
    const projectNumber = this.found.get(projectId);
    if (projectNumber !== undefined) return { state: 'found', projectId, projectNumber };
    if (this.lookups.size > 0) return { state: 'looking', projectId };
    const failure = this.failed.get(projectId) ?? this.whyNotLookable() ?? { reason: 'not looked up yet', hint: this.deps.howToSet };
    return { state: 'unknown', projectId, reason: failure.reason, hint: failure.hint };
  }

  private get registry(): AccountRegistry {
    return this.deps.broker.registry;
  }

  private projectId(): string | undefined {
    return this.registry.defaultAccount()?.client.projectId;
  }

  private noProject(): { reason: string; hint: string } {
    const account = this.registry.defaultAccount();
    return account === undefined
      ? { reason: 'there is no default account, whose project it would be', hint: `run \`tokend default EMAIL\`, or ${this.deps.howToSet}` }
      : { reason: `the client file of ${account.email} names no project ("project_id")`, hint: this.deps.howToSet };
  }

  /** Why no lookup can be made for the default account, or undefined when one can. */
  private whyNotLookable(): { reason: string; hint: string } | undefined {
    const account = this.registry.defaultAccount();
    if (account === undefined) return this.noProject();
    if (LOOKUP_SCOPES.some((scope) => account.granted.has(scope))) return undefined;
    return {
      reason: `${account.email} did not grant cloud-platform or cloud-platform.read-only, which reading the project needs`,
      hint: this.deps.howToSet,
    };
  }

  private lookUp(): Promise<string | undefined> | undefined {
    const account = this.registry.defaultAccount();
    const projectId = account?.client.projectId;
    if (account === undefined || projectId === undefined || this.whyNotLookable() !== undefined) return undefined;
    const failure = this.failed.get(projectId);
    if (failure !== undefined && this.deps.clock.now() - failure.at < RETRY_AFTER_MS) return undefined;
    const scope = LOOKUP_SCOPES.find((candidate) => account.granted.has(candidate))!;
    return this.lookups.run(projectId, async () => {
      try {
        const { accessToken } = await this.deps.broker.getToken({
          account: account.email,
          scopes: ScopeSet.of([scope]),
          caller: { transport: 'project-lookup' },
        });
        const projectNumber = await this.deps.directory.projectNumber(projectId, accessToken);
        this.found.set(projectId, projectNumber);
        this.failed.delete(projectId);
        this.deps.logger.info({ event: 'project_number_found', project: projectId, project_number: projectNumber }, `project ${projectId} has the number ${projectNumber}`);
        return projectNumber;
      } catch (error) {
        const reason = isTokendError(error) ? error.message : 'the lookup failed unexpectedly';
        this.failed.set(projectId, { at: this.deps.clock.now(), reason: `looking it up failed: ${reason}`, hint: this.deps.howToSet });
        this.deps.logger.warn({ event: 'project_number_lookup_failed', project: projectId, err: error }, 'could not look up the project number');
        return undefined;
      }
    });
  }
}
