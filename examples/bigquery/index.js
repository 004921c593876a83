#!/usr/bin/env node
// The query of Google's guide to end-user credentials, with tokens from tokend instead of a key file
// or gcloud's application-default credentials:
//
//   node examples/bigquery PROJECT_ID
//
// PROJECT_ID is a project where you may run BigQuery jobs (it is billed for the query). Needs a running
// `tokend serve` and a `tokend login --scopes bigquery` (or cloud-platform). BIGQUERY_API_ENDPOINT
// points the client elsewhere (the tests use a local stand-in).
import { BigQuery } from '@google-cloud/bigquery';
import { TokendAuthClient } from 'tokend/client';

const QUERY = `SELECT name, SUM(number) as total
FROM \`bigquery-public-data.usa_names.usa_1910_current\`
WHERE name = 'William'
GROUP BY name`;

const projectId = process.argv[2] ?? process.env.GOOGLE_CLOUD_PROJECT;
if (projectId === undefined || projectId === '') {
  console.error('usage: node examples/bigquery PROJECT_ID');
  process.exit(2);
}

const endpoint = process.env.BIGQUERY_API_ENDPOINT;
const bigquery = new BigQuery({
  projectId,
  authClient: new TokendAuthClient({ scopes: ['bigquery'] }),
  ...(endpoint === undefined ? {} : { apiEndpoint: endpoint }),
});

try {
  const [rows] = await bigquery.query({ query: QUERY });
  for (const row of rows) console.log(`${row.name}: ${row.total}`);
} catch (error) {
  // tokend's errors carry a hint with the command that fixes them.
  console.error(`bigquery example: ${error.message}`);
  if (error.hint !== undefined) console.error(`hint: ${error.hint}`);
  process.exit(1);
}
