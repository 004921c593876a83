/**
 * The real @google-cloud/bigquery client and the example, with tokens from the real daemon through
 * TokendAuthClient, against a BigQuery-shaped stand-in that checks every bearer token at the OAuth
 * stand-in (active, and a scope BigQuery accepts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { BigQuery } from '@google-cloud/bigquery';
import { TokendAuthClient } from '../../src/client/index.js';
import { startBigQueryStandin, type BigQueryStandin } from '../helpers/bigquery-standin.js';
import { daemonDirs, daemonEnv, startDaemonProcess, stopAllDaemons, loginByPasteBack } from '../helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const QUERY = "SELECT name, SUM(number) as total FROM `bigquery-public-data.usa_names.usa_1910_current` WHERE name = 'William' GROUP BY name";

let oauth: StandinHandle;
let bigqueryStandin: BigQueryStandin;
let env: NodeJS.ProcessEnv;

before(async () => {
  oauth = await startStandin();
  bigqueryStandin = await startBigQueryStandin(oauth);
  const dirs = daemonDirs();
  env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false' });
  await startDaemonProcess({ name: 'bigquery', env, socket: dirs.socket });
  const clientFile = oauth.writeClientSecrets(dirs.root);
  assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery,devstorage.read_only', '--default'], env)).code, 0);
});
after(async () => {
  await stopAllDaemons();
  await bigqueryStandin?.stop();
  await oauth?.stop();
});

describe('BigQuery through TokendAuthClient', () => {
  test('@google-cloud/bigquery runs the query with tokend\'s token, every request authorized', async () => {
    const before = bigqueryStandin.requests.length;
    const bigquery = new BigQuery({
      projectId: 'tokend-test',
      authClient: new TokendAuthClient({ socketPath: env.TOKEND_SOCKET!, scopes: ['bigquery'] }),
      apiEndpoint: bigqueryStandin.endpoint,
    });
    const [rows] = await bigquery.query({ query: QUERY });
    assert.deepEqual(rows, [{ name: 'William', total: 4010729 }]);
    const made = bigqueryStandin.requests.slice(before);
    assert.ok(made.some((request) => request.path.endsWith("/queries")), `the client ran the query: ${JSON.stringify(made)}`);
    assert.ok(made.every((request) => request.authorized), 'every call carried a live token with a BigQuery scope');
  });

  test('a token without a scope BigQuery accepts is refused by the stand-in (it checks what it is given)', async () => {
    const bigquery = new BigQuery({
      projectId: 'tokend-test',
      authClient: new TokendAuthClient({ socketPath: env.TOKEND_SOCKET!, scopes: ['devstorage.read_only'] }),
      apiEndpoint: bigqueryStandin.endpoint,
    });
    await assert.rejects(bigquery.query({ query: QUERY }), /insufficient authentication scopes/);
  });

  test('the example prints William\'s total', async () => {
    const result = await promisify(execFile)(process.execPath, [`${ROOT}examples/bigquery/index.js`, 'tokend-test'], {
      env: { ...env, BIGQUERY_API_ENDPOINT: bigqueryStandin.endpoint },
      timeout: 30_000,
    });
    assert.equal(result.stdout, 'William: 4010729\n', result.stderr);
  });
});
