import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Broker } from '../broker/broker.js';
import type { ProjectNumbers } from '../broker/project-number.js';
import { ScopeSet } from '../broker/scopes.js';
import { BadRequestError, NotFoundError } from '../errors.js';
import type { CallerOf } from './cached-token.js';
import { metadataHeaderRefusal } from './metadata-headers.js';
import { sendJson, sendListing, sendText, sendToken } from './replies.js';

/** What the metadata tree answers that no client file says. */
export interface MetadataFacts {
  /** `project/numeric-project-id`: gcloud needs digits here to use the metadata server at all. */
  projectNumbers?: ProjectNumbers;
  /** `instance/zone` as the short name (`europe-west1-b`); 404 when unset. */
  zone?: string;
}

export interface MetadataDeps {
  broker: Broker;
  facts: MetadataFacts;
  /** What is known of the caller of a request (transport, and more where the listener can tell). */
  callerOf: CallerOf;
}

const PREFIX = '/computeMetadata/v1';
const ACCOUNT_ENTRIES = ['aliases', 'email', 'identity', 'scopes', 'token'];

type AccountRequest = FastifyRequest<{ Params: { account: string }; Querystring: Record<string, string | undefined> }>;

function isRecursive(request: FastifyRequest): boolean {
  const query = request.query as Record<string, string | undefined>;
  return query.recursive === 'true';
}

/**
 * The part of the Compute Engine metadata tree that Google's client libraries read, answered the way
 * the real server answers (see docs/metadata.md): exact content types, `Metadata-Flavor: Google` on
 * every response, 403 without the flavor header or with a header a proxy adds (`X-Forwarded-For`, `Forwarded`, `Via`, ...).
 */
export function registerMetadataRoutes(app: FastifyInstance, deps: MetadataDeps): void {
  const { broker } = deps;

  app.addHook('onRequest', (request, _reply, done) => {
    // The matched route, not the raw URL: `/%63omputeMetadata/...` routes here too.
    if (request.routeOptions.url?.startsWith('/computeMetadata') !== true) return done();
    done(metadataHeaderRefusal(request.headers));
  });

  app.get('/', (_request, reply) => sendListing(reply, ['computeMetadata/']));
  app.get('/computeMetadata/', (_request, reply) => sendListing(reply, ['v1/']));
  // Directories asked for without their slash answer 301, as the real server does.
  for (const directory of ['/computeMetadata', PREFIX, `${PREFIX}/instance/service-accounts`, `${PREFIX}/project`, `${PREFIX}/universe`]) {
    app.get(directory, (_request, reply) => reply.redirect(`${directory}/`, 301));
  }
  app.get(`${PREFIX}/project/`, (_request, reply) => sendListing(reply, ['numeric-project-id', 'project-id']));
  app.get(`${PREFIX}/universe/`, (_request, reply) => sendListing(reply, ['universe-domain']));
  app.get(`${PREFIX}/`, (_request, reply) => sendListing(reply, ['instance/', 'project/', 'universe/']));
  // Node's detection ping asks for `instance` without the slash.
  const instanceEntries = () => ['service-accounts/', ...(deps.facts.zone === undefined || deps.facts.projectNumbers?.known() === undefined ? [] : ['zone'])];
  const projectNumber = async (): Promise<string> => {
    const projectNumbers = deps.facts.projectNumbers;
    const found = await projectNumbers?.resolve();
    if (found !== undefined) return found;
    const status = projectNumbers?.status();
    const why = status?.state === 'unknown' ? status : { reason: 'it is still being looked up', hint: 'ask again in a few seconds; `tokend status` shows the lookup' };
    throw new NotFoundError(`the project number is not known: ${why.reason}`, { hint: why.hint });
  };
  app.get(`${PREFIX}/instance`, (_request, reply) => sendListing(reply, instanceEntries()));
  app.get(`${PREFIX}/instance/`, (_request, reply) => sendListing(reply, instanceEntries()));
  app.get(`${PREFIX}/instance/zone`, async (_request, reply) => {
    const { zone } = deps.facts;
    if (zone === undefined) {
      throw new NotFoundError('no zone is configured (this is not a VM)', { hint: 'set "zone" in the config file if a program needs it (docs/configuration.md)' });
    }
    return sendText(reply, `projects/${await projectNumber()}/zones/${zone}`);
  });

  app.get(`${PREFIX}/instance/service-accounts/`, (request, reply) => {
    const accounts = broker.registry.list();
    const defaultAccount = broker.registry.defaultAccount();
    if (isRecursive(request)) {
      const body: Record<string, unknown> = {};
      for (const account of accounts) {
        const info = { aliases: account === defaultAccount ? ['default'] : [], email: account.email, scopes: account.defaultScopes.scopes };
        body[account.email] = info;
        if (account === defaultAccount) body.default = info;
      }
      return sendJson(reply, body);
    }
    const names = accounts.map((account) => `${account.email}/`);
    return sendListing(reply, defaultAccount === undefined ? names : ['default/', ...names]);
  });

  app.get(`${PREFIX}/instance/service-accounts/:account`, (request: AccountRequest, reply) =>
    reply.redirect(`${PREFIX}/instance/service-accounts/${encodeURIComponent(request.params.account)}/`, 301),
  );

  app.get(`${PREFIX}/instance/service-accounts/:account/`, (request: AccountRequest, reply) => {
    const account = broker.describeAccount(request.params.account);
    if (!isRecursive(request)) return sendListing(reply, ACCOUNT_ENTRIES);
    const isDefault = broker.registry.defaultAccount()?.email === account.email;
    return sendJson(reply, {
      aliases: isDefault ? ['default'] : [],
      email: account.email,
      scopes: account.scopes.scopes,
    });
  });

  app.get(`${PREFIX}/instance/service-accounts/:account/aliases`, (request: AccountRequest, reply) => {
    const account = broker.describeAccount(request.params.account);
    const isDefault = broker.registry.defaultAccount()?.email === account.email;
    return sendText(reply, isDefault ? 'default' : '');
  });

  app.get(`${PREFIX}/instance/service-accounts/:account/email`, (request: AccountRequest, reply) =>
    sendText(reply, broker.describeAccount(request.params.account).email),
  );

  app.get(`${PREFIX}/instance/service-accounts/:account/scopes`, (request: AccountRequest, reply) =>
    sendListing(reply, [...broker.describeAccount(request.params.account).scopes.scopes]),
  );

  app.get(`${PREFIX}/instance/service-accounts/:account/token`, async (request: AccountRequest, reply: FastifyReply) => {
    const scopesParam = request.query.scopes;
    if (Array.isArray(scopesParam)) throw new BadRequestError('`scopes` was given more than once', { hint: 'give it once, as a comma-separated list' });
    const scopes = scopesParam === undefined || scopesParam === '' ? undefined : ScopeSet.parse(scopesParam);
    const issued = await broker.getToken({
      account: request.params.account,
      ...(scopes === undefined ? {} : { scopes }),
      caller: deps.callerOf(request),
    });
    return sendToken(reply, issued);
  });

  app.get(`${PREFIX}/instance/service-accounts/:account/identity`, () => {
    throw new NotFoundError('ID tokens are not served yet by tokend', { hint: 'ask for an access token (`.../token`) instead' });
  });

  app.get(`${PREFIX}/project/project-id`, (_request, reply) => {
    const projectId = broker.registry.defaultAccount()?.client.projectId;
    if (projectId === undefined) {
      throw new NotFoundError('no project is known: the client file of the default account names none', {
        hint: 'set GOOGLE_CLOUD_PROJECT for your program, or log in with a client file that has "project_id"',
      });
    }
    return sendText(reply, projectId);
  });

  app.get(`${PREFIX}/project/numeric-project-id`, async (_request, reply) => sendText(reply, await projectNumber()));

  app.get(`${PREFIX}/universe/universe-domain`, (_request, reply) => sendText(reply, 'googleapis.com'));
}
