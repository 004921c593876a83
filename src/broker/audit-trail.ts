import type { Clock, TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';
import type { ScopeSet } from './scopes.js';

export interface CallerInfo {
  /** How the request arrived: 'unix' or 'tcp'. */
  transport: string;
  pid?: number;
  uid?: number;
  /** The client's port, on TCP. */
  port?: number;
}

export type CacheOutcome = 'hit' | 'miss' | 'stale';

/** How long cache hits are counted before their line is written. */
export const HIT_INTERVAL_MS = 10_000;
/** TCP ports named on one hit line at most; the rest are counted. */
const MAX_PORTS = 16;

export interface ServedToken {
  /** The token's cache key (account and scope set). */
  key: string;
  account: string;
  scopes: ScopeSet;
  cache: CacheOutcome;
  expiresIn: number;
  caller: CallerInfo | undefined;
}

interface HitTally {
  account: string;
  scopes: ScopeSet;
  /** The caller without its TCP port: one tally holds every connection of the same kind of caller. */
  caller: CallerInfo | undefined;
  count: number;
  ports: Set<number>;
  otherPorts: number;
  firstAt: number;
  lastAt: number;
  expiresIn: number;
}

/**
 * The audit trail of tokens served (docs/security.md#the-audit-trail). A token the broker refreshed
 * (`miss`, `stale`) gets its own `token_issued` line at once, before it is served. Serving a cached
 * token again (`hit`) is counted per account, scope set and caller, and written as one `token_issued`
 * line with `count` once per interval, at close, and at exit: a program asking a thousand times a
 * second writes one line, not a thousand, and the journal never drops lines for the rate.
 */
export class AuditTrail {
  /** Tallies by cache key, then by caller: the broker hands over the same key string on every hit, so V8 hashes it once. */
  private readonly hits = new Map<string, Map<string, HitTally>>();
  private timer: TimerHandle | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly intervalMs = HIT_INTERVAL_MS,
  ) {}

  served(token: ServedToken): void {
    if (token.cache !== 'hit') {
      this.logger.info(
        { event: 'token_issued', account: token.account, scopes: token.scopes.scopes, cache: token.cache, expires_in: token.expiresIn, caller: token.caller },
        'access token issued',
      );
      return;
    }
    if (!this.logger.isLevelEnabled('info')) return;
    const caller = token.caller;
    const callerKey = caller === undefined ? '' : caller.uid === undefined && caller.pid === undefined ? caller.transport : `${caller.transport}\n${caller.uid}\n${caller.pid}`;
    const now = this.clock.wallTime();
    let byCaller = this.hits.get(token.key);
    if (byCaller === undefined) this.hits.set(token.key, (byCaller = new Map<string, HitTally>()));
    let tally = byCaller.get(callerKey);
    if (tally === undefined) {
      tally = { account: token.account, scopes: token.scopes, caller: withoutPort(caller), count: 0, ports: new Set(), otherPorts: 0, firstAt: now, lastAt: now, expiresIn: token.expiresIn };
      byCaller.set(callerKey, tally);
    }
    tally.count++;
    tally.lastAt = now;
    tally.expiresIn = token.expiresIn;
    const port = caller?.port;
    if (port !== undefined && !tally.ports.has(port)) {
      if (tally.ports.size < MAX_PORTS) tally.ports.add(port);
      else tally.otherPorts++;
    }
    this.timer ??= this.clock.setTimer(this.intervalMs, () => {
      this.timer = undefined;
      this.flush();
    });
  }

  /** Writes the hits counted so far, one line per account, scope set and caller. Synchronous: safe at exit. */
  flush(): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const byCaller of this.hits.values()) {
      for (const tally of byCaller.values()) {
        const ports = tally.ports.size === 0 ? {} : { ports: [...tally.ports], ...(tally.otherPorts === 0 ? {} : { other_ports: tally.otherPorts }) };
        this.logger.info(
          {
            event: 'token_issued',
            account: tally.account,
            scopes: tally.scopes.scopes,
            cache: 'hit',
            count: tally.count,
            first_at: new Date(tally.firstAt).toISOString(),
            last_at: new Date(tally.lastAt).toISOString(),
            expires_in: tally.expiresIn,
            caller: tally.caller,
            ...ports,
          },
          tally.count === 1 ? 'access token issued' : `access token issued ${tally.count} times`,
        );
      }
    }
    this.hits.clear();
  }
}

function withoutPort(caller: CallerInfo | undefined): CallerInfo | undefined {
  if (caller?.port === undefined) return caller;
  const { port: _port, ...rest } = caller;
  return rest;
}
