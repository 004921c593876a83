import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { AccountRegistry } from '../../src/broker/accounts.js';
import { Broker } from '../../src/broker/broker.js';
import { ProjectNumbers } from '../../src/broker/project-number.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { ManualClock } from '../../src/clock.js';
import { UpstreamRejectedError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { ProjectDirectory } from '../../src/oauth/resource-manager.js';
import { Secret } from '../../src/secret.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { fakeClient, FakeUpstream } from '../helpers/fake-upstream.js';

const G = 'https://www.googleapis.com/auth/';

/** A directory that records what it was asked, answers from `numbers`, and can be held or made to refuse. */
class FakeDirectory implements ProjectDirectory {
  calls: Array<{ projectId: string; token: string }> = [];
  numbers = new Map([['fake-project', '123456789012'], ['other-project', '42']]);
  refuse = false;
  gate: Promise<void> | undefined;

  async projectNumber(projectId: string, accessToken: Secret): Promise<string> {
    this.calls.push({ projectId, token: accessToken.reveal() });
    if (this.gate !== undefined) await this.gate;
    const found = this.numbers.get(projectId);
    if (this.refuse || found === undefined) throw new UpstreamRejectedError(`the Resource Manager does not show project ${projectId} to this account (HTTP 403)`, { hint: 'x' });
    return found;
  }
}

async function setup({ granted = ['cloud-platform'], configured = undefined as string | undefined, noProject = false } = {}) {
  const clock = new ManualClock();
  const upstream = new FakeUpstream();
  const accounts = new AccountRegistry(new MemoryStore(), silentLogger());
  const broker = new Broker({ accounts, upstream, clock, logger: silentLogger() });
  await broker.adoptConsent({
    email: 'alice@example.com',
    refreshToken: new Secret('refresh-1'),
    granted: ScopeSet.parse(granted.join(',')),
    client: { ...fakeClient, projectId: noProject ? undefined : 'fake-project' },
    clientFile: undefined,
  });
  await broker.setDefault('alice@example.com');
  const directory = new FakeDirectory();
  const numbers = new ProjectNumbers({ configured, broker, directory, clock, logger: silentLogger(), howToSet: 'SET IT LIKE THIS', waitMs: 2000 });
  return { clock, upstream, broker, directory, numbers };
}

describe('the project number', () => {
  test('a configured number is answered as is: nothing is looked up', async () => {
    const { numbers, directory, upstream } = await setup({ configured: '999' });
    assert.equal(await numbers.resolve(), '999');
    assert.deepEqual(numbers.status(), { state: 'configured', projectNumber: '999' });
    assert.equal(directory.calls.length + upstream.refreshCalls.length, 0);
  });

  test('looked up once with the account\'s own token, narrowed to reading, and remembered', async () => {
    const { numbers, directory, upstream } = await setup({ granted: ['cloud-platform', 'cloud-platform.read-only', 'bigquery'] });
    const answers = await Promise.all([numbers.resolve(), numbers.resolve(), numbers.resolve()]);
    assert.deepEqual(answers, ['123456789012', '123456789012', '123456789012']);
    assert.deepEqual(await numbers.resolve(), '123456789012');
    assert.equal(directory.calls.length, 1, 'concurrent and later calls share the one lookup');
    assert.deepEqual(directory.calls[0], { projectId: 'fake-project', token: 'access-1' });
    assert.deepEqual(upstream.refreshCalls.map((call) => call.scopes), [[`${G}cloud-platform.read-only`]], 'the read-only scope when granted');
    assert.deepEqual(numbers.status(), { state: 'found', projectId: 'fake-project', projectNumber: '123456789012' });
    assert.equal(numbers.known(), '123456789012');
  });

  test('with cloud-platform only, that scope is used', async () => {
    const { numbers, upstream } = await setup();
    assert.equal(await numbers.resolve(), '123456789012');
    assert.deepEqual(upstream.refreshCalls.map((call) => call.scopes), [[`${G}cloud-platform`]]);
  });

  test('an account that granted neither scope is not looked up, and status says why and how to set it', async () => {
    const { numbers, directory, upstream } = await setup({ granted: ['bigquery'] });
    assert.equal(await numbers.resolve(), undefined);
    assert.equal(directory.calls.length + upstream.refreshCalls.length, 0);
    const status = numbers.status();
    assert.equal(status.state, 'unknown');
    assert.match(status.state === 'unknown' ? status.reason : '', /alice@example\.com did not grant cloud-platform or cloud-platform\.read-only/);
    assert.equal(status.state === 'unknown' ? status.hint : '', 'SET IT LIKE THIS');
  });

  test('a client file without a project: nothing to look up, said so', async () => {
    const { numbers, directory } = await setup({ noProject: true });
    assert.equal(await numbers.resolve(), undefined);
    assert.equal(directory.calls.length, 0);
    const status = numbers.status();
    assert.match(status.state === 'unknown' ? status.reason : '', /names no project/);
  });

  test('a refused lookup is remembered with its reason and retried only after five minutes', async () => {
    const { numbers, directory, clock } = await setup();
    directory.refuse = true;
    assert.equal(await numbers.resolve(), undefined);
    assert.equal(await numbers.resolve(), undefined);
    assert.equal(directory.calls.length, 1, 'not asked again at once');
    const status = numbers.status();
    assert.match(status.state === 'unknown' ? status.reason : '', /^looking it up failed: the Resource Manager does not show project fake-project/);
    directory.refuse = false;
    clock.advance(5 * 60_000 - 1);
    assert.equal(await numbers.resolve(), undefined);
    clock.advance(1);
    assert.equal(await numbers.resolve(), '123456789012');
    assert.equal(directory.calls.length, 2);
  });

  test('a slow lookup answers "not yet" after the wait, keeps going, and its answer is served next time', { timeout: 5_000 }, async () => {
    const { numbers, directory, clock } = await setup();
    let release!: () => void;
    directory.gate = new Promise((resolve) => (release = resolve));
    const first = numbers.resolve();
    for (let i = 0; i < 5 && directory.calls.length === 0; i++) await tick();
    assert.equal(numbers.status().state, 'looking');
    clock.advance(2000);
    assert.equal(await first, undefined, 'the request does not wait past the bound');
    release();
    for (let i = 0; i < 5 && numbers.known() === undefined; i++) await tick();
    assert.equal(numbers.known(), '123456789012');
    assert.equal(directory.calls.length, 1);
  });

  test('warm() starts the lookup without waiting; a new default account with another project is looked up anew', async () => {
    const { numbers, directory, broker } = await setup();
    numbers.warm();
    for (let i = 0; i < 5 && numbers.known() === undefined; i++) await tick();
    assert.equal(numbers.known(), '123456789012');
    await broker.adoptConsent({
      email: 'bob@example.com',
      refreshToken: new Secret('refresh-bob'),
      granted: ScopeSet.parse('cloud-platform'),
      client: { ...fakeClient, projectId: 'other-project' },
      clientFile: undefined,
    });
    await broker.setDefault('bob@example.com');
    assert.equal(numbers.known(), undefined, 'the number of another project is not reused');
    assert.equal(await numbers.resolve(), '42');
    assert.deepEqual(directory.calls.map((call) => call.projectId), ['fake-project', 'other-project']);
  });
});
