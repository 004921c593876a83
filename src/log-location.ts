type Env = Readonly<Record<string, string | undefined>>;

/**
 * Where this process's log goes, for hints the daemon writes: the journal or the LaunchAgent's file
 * when the service files `tokend service install` wrote started it (they set TOKEND_SERVICE; systemd's
 * own INVOCATION_ID is inherited by every shell of a terminal that runs as a unit), else stderr.
 */
export function ownLogLocation(env: Env = process.env): string {
  if (env.TOKEND_SERVICE === 'systemd') return 'the daemon log (`journalctl --user -u tokend`)';
  if (env.TOKEND_SERVICE === 'launchd') return 'the daemon log (~/Library/Logs/tokend/tokend.log)';
  return 'the daemon log (the stderr of `tokend serve`)';
}

/** For hints the CLI writes, which cannot tell how the daemon was started: both places. */
export function daemonLogLocation(platform: NodeJS.Platform = process.platform): string {
  const service = platform === 'darwin' ? '~/Library/Logs/tokend/tokend.log' : '`journalctl --user -u tokend`';
  return `the daemon log (${service} for the service, else the stderr of \`tokend serve\`)`;
}
