import { TokendClient } from '../client/socket-client.js';
import { loadConfig } from '../config/config.js';
import type { Io } from './io.js';

/** The client every command but `serve` talks through: socket from --socket, TOKEND_SOCKET, config, default. */
export function clientFor(io: Io, socketFlag: string | undefined): TokendClient {
  const config = loadConfig(socketFlag === undefined ? {} : { socket: socketFlag }, io.env);
  return new TokendClient({ socketPath: config.settings.socket });
}

export const socketOption = { socket: { type: 'string' } } as const;
