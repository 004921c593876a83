import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { floodLimitedCounter, type Logger } from '../log.js';

/**
 * Which connections of an HTTP server have a request in flight, and which has been idle longest. A
 * connection still sending its first request counts as idle: that is what a slow or stuck client
 * looks like, and what a runaway one leaves behind.
 */
export class IdleTracker {
  private readonly connections = new Map<Socket, { busy: number; idleSince: number }>();
  private tick = 0;

  constructor(server: Server) {
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      const entry = this.connections.get(request.socket);
      if (entry === undefined) return;
      // Answered already (a cache hit is answered before this listener runs): idle again at once.
      if (response.writableEnded) {
        if (entry.busy === 0) entry.idleSince = ++this.tick;
        return;
      }
      entry.busy++;
      response.once('close', () => {
        entry.busy--;
        if (entry.busy === 0) entry.idleSince = ++this.tick;
      });
    });
  }

  add(socket: Socket): void {
    this.connections.set(socket, { busy: 0, idleSince: ++this.tick });
    socket.once('close', () => this.connections.delete(socket));
  }

  /** The connection among `candidates` with no request in flight for the longest, if any is idle. */
  longestIdle(candidates: Iterable<Socket>): Socket | undefined {
    let oldest: Socket | undefined;
    let since = Infinity;
    for (const socket of candidates) {
      const entry = this.connections.get(socket);
      if (entry !== undefined && entry.busy === 0 && entry.idleSince < since) {
        oldest = socket;
        since = entry.idleSince;
      }
    }
    return oldest;
  }
}

/**
 * Holds `server` to `max` connections without locking anyone out: at the cap, a new connection makes
 * room by closing the one idle longest; only when every connection has a request in flight is the
 * new one refused. A runaway program that opens connections and leaves them open (or drips its
 * headers) cannot exhaust the daemon's descriptors, and cannot starve a client that sends a request
 * and waits for the answer.
 */
export function limitConnections(server: Server, options: { max: number; listener: string; logger?: Logger }): void {
  const idle = new IdleTracker(server);
  const open = new Set<Socket>();
  const count = floodLimitedCounter();
  const note = (what: 'evicted' | 'refused') => {
    const { count: n, log } = count(what);
    if (log) {
      options.logger?.warn(
        { event: what === 'evicted' ? 'connection_evicted' : 'connection_refused', listener: options.listener, max: options.max, count: n },
        what === 'evicted' ? `${options.max} connections open: closed the one idle longest` : `${options.max} connections open, all busy: refused a new one`,
      );
    }
  };
  server.prependListener('connection', (socket: Socket) => {
    if (open.size >= options.max) {
      const victim = idle.longestIdle(open);
      if (victim === undefined) {
        note('refused');
        socket.destroy();
        return;
      }
      note('evicted');
      open.delete(victim);
      victim.destroy();
    }
    open.add(socket);
    idle.add(socket);
    socket.once('close', () => open.delete(socket));
  });
}
