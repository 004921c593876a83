// `tokend/client`: the socket client (no server code in its import graph) and the
// google-auth-library AuthClient built on it.
export { TokendClient } from './socket-client.js';
export type { TokenResponse, SocketClientOptions, LoginOutcome } from './socket-client.js';
export { TokendAuthClient, type TokendAuthClientOptions } from './auth-client.js';
export { defaultSocketPath } from '../config/paths.js';
