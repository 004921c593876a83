/**
 * The project number gcloud needs before it uses the metadata listener, with the real daemon, CLI and
 * a Resource Manager stand-in: looked up at start so gcloud's first question is answered at once;
 * when it cannot be looked up, `status`, `env` and the 404 say why and how to set it; configured, it
 * is answered as is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { daemonDirs, daemonEnv, freePort, loginByPasteBack, runCli, startDaemonProcess, stopAllDaemons, type DaemonProcess } from '../helpers/daemon-process.js';
import { getMetadata } from '../helpers/metadata-client.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { startResourceManagerStandin, type ResourceManagerStandin } from '../helpers/resource-manager-standin.js';

let oauth: StandinHandle;
let projects: Record<string, string>;
let resourceManager: ResourceManagerStandin;
let env: NodeJS.ProcessEnv;
let socket: string;
let port: number;
let daemon: DaemonProcess;

before(async () => {
  oauth = await startStandin();
  projects = {};
  resourceManager = await startResourceManagerStandin(oauth, projects);
  const dirs = daemonDirs();
  socket = dirs.socket;
  port = await freePort();
  env = daemonEnv(dirs, {
    TOKEND_STORE: 'file',
    TOKEND_FILE_PASSPHRASE: 'correct horse battery staple',
    TOKEND_METADATA_PORT: String(port),
    TOKEND_RESOURCE_MANAGER_URL: resourceManager.endpoint,
    BROWSER: 'false',
  });
  daemon = await startDaemonProcess({ name: 'project-number', env, socket });
  const clientFile = oauth.writeClientSecrets(dirs.root);
  assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'cloud-platform', '--default'], env)).code, 0);
});
after(async () => {
  await stopAllDaemons();
  await resourceManager?.stop();
  await oauth?.stop();
});

async function numericProjectId(): Promise<{ status: number; body: string }> {
  const { status, body } = await getMetadata(port, '/computeMetadata/v1/project/numeric-project-id');
  return { status, body };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(condition(), what);
}

describe('the project number', () => {
  test('a project the account may not read: the 404, status and env say why and how to set the number', async () => {
    const answer = await numericProjectId();
    assert.equal(answer.status, 404);
    const error = JSON.parse(answer.body).error;
    assert.match(error.message, /^the project number is not known: looking it up failed: the Resource Manager at 127\.0\.0\.1:\d+ does not show project tokend-test to this account \(HTTP 403\)$/);
    assert.match(error.hint, /"projectNumber": "<digits>" in .*config\.json, or set TOKEND_PROJECT_NUMBER for the daemon/);
    assert.doesNotMatch(answer.body, /stand-in text/, 'the upstream\'s own words are not passed on');

    const status = await runCli(['status'], env);
    assert.match(status.stdout, /^project: {2}tokend-test, number UNKNOWN: looking it up failed: the Resource Manager .* \(HTTP 403\)$/m);
    assert.match(status.stdout, /^ {10}gcloud ignores the metadata listener without it: put "projectNumber"/m);

    const printed = await runCli(['env'], env);
    assert.equal(printed.code, 0);
    assert.match(printed.stdout, /^export GCE_METADATA_HOST=/m, 'the lines are printed all the same');
    assert.match(printed.stderr, /^warning: gcloud ignores the metadata listener while the project number is unknown \(looking it up failed: .*\): put "projectNumber"/m);
    assert.equal(resourceManager.requests.filter((made) => made.status === 403).length, 1, 'a refused lookup is not repeated at once');
  });

  test('after a restart the number is looked up at start, before anyone asks, and answered at once', async () => {
    projects['tokend-test'] = '314159265358';
    await daemon.stop();
    daemon = await startDaemonProcess({ name: 'project-number-restarted', env, socket });
    await until(() => /"event":"project_number_found"/.test(daemon.log()), `looked up at start: ${daemon.log()}`);
    assert.deepEqual(await numericProjectId(), { status: 200, body: '314159265358' });
    assert.match((await runCli(['status'], env)).stdout, /^project: {2}tokend-test, number 314159265358 \(from the Resource Manager\)$/m);
    const printed = await runCli(['env'], env);
    assert.equal(printed.stderr, '', 'no warning once the number is known');
  });

  test('a configured number is answered as is, and nothing is looked up', async () => {
    await daemon.stop();
    const asked = resourceManager.requests.length;
    daemon = await startDaemonProcess({ name: 'project-number-configured', env: { ...env, TOKEND_PROJECT_NUMBER: '271828182845' }, socket });
    assert.deepEqual(await numericProjectId(), { status: 200, body: '271828182845' });
    assert.match((await runCli(['status'], env)).stdout, /^project: {2}number 271828182845 \(configured\)$/m);
    assert.equal(resourceManager.requests.length, asked);
  });

  test('with no daemon running, `tokend env` still prints the lines and says how to start it', async () => {
    await daemon.stop();
    const printed = await runCli(['env'], env);
    assert.equal(printed.code, 0);
    assert.match(printed.stdout, /^export TOKEND_SOCKET=/m);
    assert.match(printed.stderr, /^warning: no tokend is running on .*, so programs pointed at it get no tokens: start it with `tokend serve`/m);
  });
});
