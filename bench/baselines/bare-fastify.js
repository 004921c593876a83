// The framework baseline: fastify with its defaults and one route answering a fixed body and headers.
// `listen` is a path, a port, or `{ fd: 3 }` (a socket a service manager bound).
import Fastify from 'fastify';

const { listen, headers, body } = JSON.parse(process.env.BENCH_BASELINE);
const app = Fastify({ logger: false });
app.get('*', (_request, reply) => reply.headers(headers).send(body));
if (listen.fd === undefined) {
  await app.listen(listen);
} else {
  // fastify's listen() cannot log an inherited Unix socket's address; the server listens as it would.
  await app.ready();
  await new Promise((resolve) => app.server.listen({ fd: listen.fd }, resolve));
}
process.stdout.write('ready\n');
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
