/** The command that restarts the daemon under the service files install wrote (TOKEND_SERVICE), if it runs so. */
export function serviceRestartCommand(service: string | null | undefined): string | undefined {
  if (service === 'systemd') return 'systemctl --user restart tokend';
  if (service === 'launchd') return `launchctl kickstart -k gui/${process.getuid?.() ?? '$(id -u)'}/dev.tokend`;
  return undefined;
}
