// The mutations `npm run mutants` applies, one at a time: each breaks one behaviour tokend promises,
// and the suite must fail on every one of them. `from` must occur exactly once in `file` (the run
// refuses a list that has drifted from the code). Issue 6 listed the first ten; the rest were added
// looking for the same kind of gap elsewhere.
export const mutants = [
  // Issue 6, the survivors.
  {
    id: 'rotated-token-save-not-awaited',
    file: 'src/broker/broker.ts',
    from: "      if (!(await this.accounts.save(account))) throw new AccountChangedError();\n    } catch (error) {\n      this.logger.error({ event: 'store_write_failed'",
    to: "      void this.accounts.save(account);\n    } catch (error) {\n      this.logger.error({ event: 'store_write_failed'",
  },
  { id: 'private-dir-group-writable-only', file: 'src/fs/private-path.ts', from: 'if ((mode & 0o022) !== 0) {', to: 'if ((mode & 0o020) !== 0) {' },
  {
    id: 'metadata-flavor-any-value',
    file: 'src/server/metadata-routes.ts',
    from: "if (request.headers['metadata-flavor'] !== 'Google') {",
    to: "if (request.headers['metadata-flavor'] === undefined) {",
  },
  { id: 'log-redact-paths-empty', file: 'src/log.ts', from: "redact: { paths: redactPaths, censor: '[Redacted]' }", to: "redact: { paths: [], censor: '[Redacted]' }" },
  { id: 'secret-tojson-reveals', file: 'src/secret.ts', from: 'toJSON(): string {\n    return REDACTED;', to: 'toJSON(): string {\n    return this.#value;' },
  {
    id: 'foreign-error-message-logged',
    file: 'src/log.ts',
    from: "return { type: err.name, ...(typeof code === 'string' ? { code } : {}) };",
    to: "return { type: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };",
  },
  {
    id: 'passphrase-in-store-selected-line',
    file: 'src/server/daemon.ts',
    // In the message: a `passphrase` field would be caught by the redaction list, which is tested on its own.
    from: '`secrets are kept in: ${selection.store.description}`',
    to: '`secrets are kept in: ${selection.store.description} ${config.filePassphrase ?? ""}`',
  },
  { id: 'consent-state-length-only', file: 'src/oauth/consent.ts', from: 'return a.length === b.length && timingSafeEqual(a, b);', to: 'return a.length === b.length;' },
  {
    id: 'retry-no-backoff',
    file: 'src/oauth/retry.ts',
    from: 'await sleep(Math.max(error.retryAfterMs ?? 0, Math.floor(random() * ceiling)), signal);',
    to: 'await sleep(0, signal);',
  },
  { id: 'retry-ten-attempts', file: 'src/oauth/retry.ts', from: 'attempts: 3, baseDelayMs', to: 'attempts: 10, baseDelayMs' },

  // The broker.
  {
    id: 'single-flight-removed',
    file: 'src/broker/broker.ts',
    from: 'return this.refreshes.run(key, () => this.refresh(key, account, scopes));',
    to: 'return this.refresh(key, account, scopes);',
  },
  {
    id: 'near-expiry-token-served',
    file: 'src/broker/broker.ts',
    from: 'remainingSeconds(cached, now) > this.serveThresholdSeconds(cached)',
    to: 'remainingSeconds(cached, now) > 0',
  },
  { id: 'wider-scope-answer-served', file: 'src/broker/broker.ts', from: 'if (notGranted.length > 0 || extra.length > 0) {', to: 'if (notGranted.length > 0) {' },
  { id: 'narrower-scope-answer-served', file: 'src/broker/broker.ts', from: 'if (notGranted.length > 0 || extra.length > 0) {', to: 'if (extra.length > 0) {' },
  { id: 'ungranted-scope-sent-upstream', file: 'src/broker/broker.ts', from: 'if (missing.length === 0) return;', to: 'return;' },
  {
    id: 'consent-required-not-persisted',
    file: 'src/broker/broker.ts',
    from: '(save returns false).\n      await this.accounts.save(account);',
    to: '(save returns false).\n',
  },
  { id: 'cached-token-not-served-in-outage', file: 'src/broker/broker.ts', from: 'if (!isUpstreamOutage(error) || !usable()) throw error;', to: 'throw error;' },
  {
    id: 'failure-cooldown-removed',
    file: 'src/broker/broker.ts',
    from: 'this.clock.now() - failure.at < this.policy.failureCooldownMs',
    to: 'this.clock.now() - failure.at < 0',
  },
  { id: 'idle-tokens-refreshed-forever', file: 'src/broker/broker.ts', from: 'if (!this.pinned.has(key) && now - token.lastUsedAt > this.policy.activeWindowMs) {', to: 'if (false) {' },
  { id: 'prefetched-sets-lapse', file: 'src/broker/broker.ts', from: 'if (!this.pinned.has(key) && now - token.lastUsedAt', to: 'if (now - token.lastUsedAt' },
  { id: 'renewals-spend-the-budget', file: 'src/broker/broker.ts', from: "budget.admit(kind === 'new');", to: 'budget.admit(true);' },
  {
    // Not `generation` alone: replace() marks the old account removed as well, so that mutant is equivalent.
    id: 'refresh-after-relogin-kept',
    file: 'src/broker/broker.ts',
    from: 'if (grant === undefined || generation !== account.generation || account.removed)',
    to: 'if (grant === undefined)',
  },
  {
    id: 'expiry-counted-from-answer',
    file: 'src/broker/broker.ts',
    from: 'expiresAt: startedAt + grant.expiresInSeconds * 1000,',
    to: 'expiresAt: this.clock.now() + grant.expiresInSeconds * 1000,',
  },
  { id: 'audit-line-missing', file: 'src/broker/broker.ts', from: "event: 'token_issued',", to: "event: 'token',"},
  {
    id: 'per-account-cache-cap-removed',
    file: 'src/broker/token-cache.ts',
    from: 'if (current === undefined && this.forAccount(token.accountEmail).length > this.maxPerAccount) {',
    to: 'if (false) {',
  },
  { id: 'upstream-burst-unlimited', file: 'src/broker/upstream-budget.ts', from: 'if (this.tokens < 1) {', to: 'if (false) {' },
  {
    id: 'upstream-retry-after-ignored',
    file: 'src/broker/upstream-budget.ts',
    from: 'Math.min(this.policy.retryAfterMaxMs, retryAfterMs ?? 0)',
    to: 'Math.min(this.policy.retryAfterMaxMs, 0)',
  },

  // The OAuth client.
  { id: 'code-exchange-retried', file: 'src/oauth/token-endpoint.ts', from: '{ ...this.retry, attempts: 1 },', to: '{ ...this.retry },' },
  {
    id: 'refresh-not-downscoped',
    file: 'src/oauth/token-endpoint.ts',
    from: "refresh_token: refreshToken.reveal(), scope: scopes.join(' ') },",
    to: 'refresh_token: refreshToken.reveal() },',
  },

  // The consent listener.
  { id: 'consent-subresource-accepted', file: 'src/oauth/consent.ts', from: "return dest === undefined || dest === 'document';", to: 'return true;' },
  {
    id: 'login-hint-not-enforced',
    file: 'src/oauth/consent.ts',
    from: 'if (hint !== undefined && email.toLowerCase() !== hint.toLowerCase()) {',
    to: 'if (false) {',
  },
  { id: 'consent-listens-on-all-interfaces', file: 'src/oauth/consent.ts', from: 'server.listen(0, LOOPBACK_HOST, () => resolve());', to: 'server.listen(0, () => resolve());' },
  { id: 'browser-given-the-authorization-url', file: 'src/cli/commands/login.ts', from: 'openBrowser(started.startUrl, io.env)', to: 'openBrowser(started.authUrl, io.env)' },

  // Owner-only TCP listeners.
  { id: 'other-uid-accepted', file: 'src/net/owner-only.ts', from: 'if (peer.known && peer.uid !== owner)', to: 'if (peer.known && peer.uid === -1)' },
  {
    id: 'unknown-owner-accepted',
    file: 'src/net/owner-only.ts',
    from: "if (!peer.known && (peer.supported || options.whenUnsupported === 'refuse'))",
    to: "if (!peer.known && options.whenUnsupported === 'refuse')",
  },
  { id: 'waiting-connections-uncapped', file: 'src/net/owner-only.ts', from: 'if (sockets.size - accepted.size >= options.maxConnections)', to: 'if (false)' },
  { id: 'connections-not-paused', file: 'src/net/owner-only.ts', from: 'pauseOnConnect = true;', to: 'pauseOnConnect = false;' },

  // The Unix socket, its client, and private files.
  { id: 'socket-mode-world', file: 'src/server/daemon.ts', from: 'await chmod(settings.socket, 0o600);', to: 'await chmod(settings.socket, 0o666);' },
  { id: 'live-socket-taken-over', file: 'src/server/socket-path.ts', from: 'if (await isSocketLive(socketPath)) {', to: 'if (false) {' },
  { id: 'client-trusts-socket-owner', file: 'src/client/socket-client.ts', from: 'checkOwner(info, this.socketPath);', to: '' },
  {
    id: 'client-trusts-socket-directory',
    file: 'src/client/socket-client.ts',
    from: "await ensurePrivateDir(dir, { create: false, others: 'refuse', what: 'socket' });",
    to: '',
  },
  { id: 'proxied-metadata-request-served', file: 'src/server/metadata-routes.ts', from: 'if (proxied !== undefined) {', to: 'if (false) {' },
  { id: 'secret-file-mode-unchecked', file: 'src/fs/private-path.ts', from: "if (kind === 'secret' && mode !== 0o600) {", to: 'if (false) {' },
  { id: 'writable-ancestor-accepted', file: 'src/fs/private-path.ts', from: 'if ((info.mode & 0o022) !== 0 && !sticky) {', to: 'if (false) {' },
  { id: 'symlink-followed-on-read', file: 'src/fs/private-path.ts', from: 'constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK', to: 'constants.O_RDONLY | O_NONBLOCK' },
  { id: 'atomic-write-without-fsync', file: 'src/fs/private-path.ts', from: 'await handle.writeFile(data);\n    await handle.sync();', to: 'await handle.writeFile(data);' },
  { id: 'secrets-in-child-environment', file: 'src/config/config.ts', from: 'for (const name of SECRET_ENVIRONMENT) delete copy[name];', to: '' },

  // The metadata listener on loopback TCP.
  { id: 'metadata-any-host', file: 'src/server/metadata-guard.ts', from: 'if (headers.host === undefined || !hosts.has(headers.host.toLowerCase())) {', to: 'if (headers.host === undefined) {' },
  { id: 'metadata-origin-accepted', file: 'src/server/metadata-guard.ts', from: 'if (headers.origin !== undefined) {', to: 'if (false) {' },
  { id: 'metadata-options-accepted', file: 'src/server/metadata-guard.ts', from: "if (request.method === 'OPTIONS') {", to: 'if (false) {' },
  { id: 'metadata-forwarded-accepted', file: 'src/server/proxy-headers.ts', from: "const PROXY_HEADERS = ['x-forwarded-for', 'forwarded',", to: "const PROXY_HEADERS = ['x-forwarded-for'," },
  { id: 'metadata-any-uid', file: 'src/server/metadata-listener.ts', from: 'acceptOwnerOnly(app.server, {', to: 'void ({' },

  // The project number gcloud needs.
  {
    id: 'project-lookup-widest-scope',
    file: 'src/broker/project-number.ts',
    from: "const LOOKUP_SCOPES = ['https://www.googleapis.com/auth/cloud-platform.read-only', 'https://www.googleapis.com/auth/cloud-platform'];",
    to: "const LOOKUP_SCOPES = ['https://www.googleapis.com/auth/cloud-platform', 'https://www.googleapis.com/auth/cloud-platform.read-only'];",
  },
  { id: 'project-number-not-remembered', file: 'src/broker/project-number.ts', from: 'this.found.set(projectId, projectNumber);', to: '' },
  { id: 'project-lookup-retried-at-once', file: 'src/broker/project-number.ts', from: 'const RETRY_AFTER_MS = 5 * 60_000;', to: 'const RETRY_AFTER_MS = 0;' },
  { id: 'project-lookup-wait-unbounded', file: 'src/broker/project-number.ts', from: 'return await Promise.race([lookup, timeout]);', to: 'return await lookup;' },
  { id: 'resource-manager-follows-redirects', file: 'src/oauth/resource-manager.ts', from: "redirect: 'error',", to: "redirect: 'follow'," },
  { id: 'resource-manager-any-number', file: 'src/oauth/resource-manager.ts', from: "return typeof projectNumber === 'string' && /^\\d{1,20}$/.test(projectNumber) ? projectNumber : undefined;", to: "return typeof projectNumber === 'string' ? projectNumber : undefined;" },
];
