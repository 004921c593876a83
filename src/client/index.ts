export { TokendClient } from './socket-client.js';
export type { TokenResponse, SocketClientOptions, LoginOutcome } from './socket-client.js';
export { defaultSocketPath } from '../config/paths.js';
