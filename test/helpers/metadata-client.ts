import { request } from 'node:http';

export interface MetadataAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to a metadata listener on 127.0.0.1, with the flavor header unless `headers` overrides it. */
export function getMetadata(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<MetadataAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host: `127.0.0.1:${port}`, 'metadata-flavor': 'Google', ...headers } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One GET over the daemon's Unix socket, with the flavor header unless `headers` replaces them. */
export function getOverSocket(socket: string, path: string, headers: Record<string, string> = { 'metadata-flavor': 'Google' }): Promise<MetadataAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, headers: { host: 'localhost', ...headers } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
