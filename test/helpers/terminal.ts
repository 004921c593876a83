import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A real pseudo-terminal: a shell in a private tmux server, driven by send-keys and read by
 * capture-pane, as a person at a terminal would use tokend (prompts, Ctrl-C, what is left behind).
 */
export class Terminal {
  private constructor(private readonly server: string) {}

  /** Starts `sh` in a 200-column terminal with exactly `env` (tmux's server passes it to the shell). */
  static async start(env: NodeJS.ProcessEnv): Promise<Terminal> {
    const server = `tokend-test-${randomBytes(4).toString('hex')}`;
    await run('tmux', ['-L', server, '-f', '/dev/null', 'new-session', '-d', '-s', 'main', '-x', '200', '-y', '50', 'sh'], {
      env: { ...env, PS1: '$ ' },
    });
    return new Terminal(server);
  }

  /** Types `text` literally, then Enter. */
  async type(text: string): Promise<void> {
    await run('tmux', ['-L', this.server, 'send-keys', '-t', 'main', '-l', text]);
    await run('tmux', ['-L', this.server, 'send-keys', '-t', 'main', 'Enter']);
  }

  async keys(...names: string[]): Promise<void> {
    await run('tmux', ['-L', this.server, 'send-keys', '-t', 'main', ...names]);
  }

  /** The screen and its scrollback, wrapped lines joined. */
  async screen(): Promise<string> {
    const { stdout } = await run('tmux', ['-L', this.server, 'capture-pane', '-p', '-J', '-S', '-2000', '-t', 'main']);
    return stdout;
  }

  /** The first match of `pattern` on the screen; fails with the screen when it does not appear in time. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await this.screen();
      const match = pattern.exec(text);
      if (match !== null) return match;
      if (Date.now() > deadline) throw new Error(`${String(pattern)} did not appear within ${timeoutMs} ms; the screen:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    await run('tmux', ['-L', this.server, 'kill-server']).catch(() => undefined);
  }
}
