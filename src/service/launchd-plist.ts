import { join } from 'node:path';
import type { Installation } from './installation.js';
import type { ServiceFile } from './systemd-units.js';

export const LAUNCHD_LABEL = 'dev.tokend';

export function launchAgentPath(home: string): string {
  return join(home, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
}

export function launchdLogPath(home: string): string {
  return join(home, 'Library', 'Logs', 'tokend', 'tokend.log');
}

function xml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
const string = (value: string) => `<string>${xml(value)}</string>`;

/**
 * The LaunchAgent: started at login and kept running after a failure. launchd's own socket passing
 * needs launch_activate_socket(), which Node cannot call, so the daemon binds the socket itself; the
 * path is fixed here so that it does not depend on the environment launchd happens to give it.
 */
export function launchAgent(install: Installation): ServiceFile {
  const environment = { ...install.environment, TOKEND_SOCKET: install.socket.path, TOKEND_SERVICE: 'launchd' };
  const variables = Object.entries(environment)
    .map(([name, value]) => `    <key>${xml(name)}</key>\n    ${string(value)}\n`)
    .join('');
  const log = launchdLogPath(install.home);
  return {
    path: launchAgentPath(install.home),
    text: `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by \`tokend service install\` (tokend ${xml(install.version)}); the next install rewrites it. -->
<plist version="1.0">
<dict>
  <key>Label</key>
  ${string(LAUNCHD_LABEL)}
  <key>ProgramArguments</key>
  <array>
${[install.node, install.entry, ...install.args].map((arg) => `    ${string(arg)}\n`).join('')}  </array>
  <key>EnvironmentVariables</key>
  <dict>
${variables}  </dict>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>10</integer>
  <key>ExitTimeOut</key>
  <integer>20</integer>
  <key>ProcessType</key>
  <string>Background</string>
  <key>Umask</key>
  <integer>63</integer>
  <key>SoftResourceLimits</key>
  <dict>
    <key>Core</key>
    <integer>0</integer>
  </dict>
  <key>HardResourceLimits</key>
  <dict>
    <key>Core</key>
    <integer>0</integer>
  </dict>
  <key>StandardOutPath</key>
  ${string(log)}
  <key>StandardErrorPath</key>
  ${string(log)}
</dict>
</plist>
`,
  };
}
