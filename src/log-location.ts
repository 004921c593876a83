type Env = Readonly<Record<string, string | undefined>>;

/**
 * Where this process's log goes, for hints the daemon writes: the journal under systemd (which sets
 * INVOCATION_ID for every unit it starts), the LaunchAgent's file under launchd, else stderr.
 */
export function ownLogLocation(env: Env = process.env): string {
  if ((env.INVOCATION_ID ?? '') !== '') return 'the daemon log (`journalctl --user -u tokend`)';
  if (env.XPC_SERVICE_NAME === 'dev.tokend') return 'the daemon log (~/Library/Logs/tokend/tokend.log)';
  return 'the daemon log (the stderr of `tokend serve`)';
}

/** For hints the CLI writes, which cannot tell how the daemon was started: both places. */
export function daemonLogLocation(platform: NodeJS.Platform = process.platform): string {
  const service = platform === 'darwin' ? '~/Library/Logs/tokend/tokend.log' : '`journalctl --user -u tokend`';
  return `the daemon log (${service} for the service, else the stderr of \`tokend serve\`)`;
}
