// The framework baseline: fastify with its defaults and one route answering a fixed body and headers.
import Fastify from 'fastify';

const { listen, headers, body } = JSON.parse(process.env.BENCH_BASELINE);
const app = Fastify({ logger: false });
app.get('*', (_request, reply) => reply.headers(headers).send(body));
await app.listen(listen);
process.stdout.write('ready\n');
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
