/**
 * What a V8 CPU profile (`node --cpu-prof`) says, in two tables: self time by package (or tokend's own
 * module, or node's internals), and the heaviest functions. Used to write docs/performance.md.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function bucketOf(url: string, functionName: string): string {
  if (url === '') return functionName === '(idle)' || functionName === '(program)' || functionName === '(garbage collector)' ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return pkg[1]!;
  const own = /\/dist\/(.+)\.js$/.exec(url);
  if (own !== null) return `tokend:${own[1]}`;
  if (url.startsWith('node:')) return url.replace(/^node:internal\/([^/]+).*/, 'node:$1');
  return url;
}

export interface ProfileSummary {
  busyMs: number;
  byBucket: Array<{ name: string; ms: number; share: number }>;
  byFunction: Array<{ name: string; ms: number; share: number }>;
}

export function summarizeProfile(path: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const buckets = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const bucket = bucketOf(url, functionName);
    if (bucket === '(idle)') continue;
    busy += us;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us);
    const name = `${functionName || '(anonymous)'} ${bucket}:${lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  const rank = (map: Map<string, number>) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, ms: us / 1000, share: us / busy }));
  return { busyMs: busy / 1000, byBucket: rank(buckets), byFunction: rank(functions) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const summary = summarizeProfile(process.argv[2]!, Number(process.argv[3] ?? 25));
  console.log(`busy ${summary.busyMs.toFixed(0)} ms`);
  for (const row of summary.byBucket) console.log(`${(row.share * 100).toFixed(1).padStart(5)}%  ${row.ms.toFixed(0).padStart(6)} ms  ${row.name}`);
  console.log('');
  for (const row of summary.byFunction) console.log(`${(row.share * 100).toFixed(1).padStart(5)}%  ${row.ms.toFixed(0).padStart(6)} ms  ${row.name}`);
}
