// The physical baseline: node:http answering every request with a fixed body and headers, nothing else.
import { createServer } from 'node:http';

const { listen, headers, body } = JSON.parse(process.env.BENCH_BASELINE);
// A string: node writes it with the headers in one call, the fastest answer node:http gives.
const payload = body;
const server = createServer((_request, response) => {
  response.writeHead(200, headers);
  response.end(payload);
});
server.keepAliveTimeout = 5_000;
server.listen(listen, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
