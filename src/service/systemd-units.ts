import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Env } from '../config/paths.js';
import type { Installation } from './installation.js';

export interface ServiceFile {
  path: string;
  text: string;
}

export const SOCKET_UNIT = 'tokend.socket';
export const METADATA_SOCKET_UNIT = 'tokend-metadata.socket';
export const SERVICE_UNIT = 'tokend.service';
export const ALL_UNITS = [SOCKET_UNIT, METADATA_SOCKET_UNIT, SERVICE_UNIT] as const;

/** Where systemd's user manager looks for units an administrator of this account wrote. */
export function userUnitDir(env: Env, home: string): string {
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg !== undefined && xdg.startsWith('/') ? xdg : join(home, '.config'), 'systemd', 'user');
}

/** systemd expands `%` specifiers everywhere, and splits ExecStart= words on spaces unless quoted. */
function escapeSpecifiers(value: string): string {
  return value.replace(/%/g, '%%');
}
/** One word of a directive that systemd splits on whitespace (ExecStart=, Environment=, ReadWritePaths=). */
function quoteWord(value: string): string {
  const escaped = escapeSpecifiers(value);
  return /[\s"'\\;]/.test(escaped) ? `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : escaped;
}
/** ExecStart= also expands $NAME: a literal $ is $$. */
const execWord = (value: string) => quoteWord(value).replace(/\$/g, '$$$$');

function header(install: Installation): string {
  return `# Written by \`tokend service install\` (tokend ${install.version}); the next install rewrites it.
# Your own changes go in a drop-in: \`systemctl --user edit <this unit>\`.
`;
}

/**
 * The units for this installation: the Unix socket, the metadata listener's socket when a port is
 * configured, and the hardened service they start. Every directive below was kept only if the
 * daemon works under it (docs/service.md says how each was checked).
 */
export function systemdUnits(install: Installation, unitDir: string): ServiceFile[] {
  const metadata = install.metadataPort !== undefined;
  const socketPath = install.socket.chosen ? escapeSpecifiers(install.socket.path) : '%t/tokend/tokend.sock';
  const environment = { ...install.environment, ...(install.socket.chosen ? { TOKEND_SOCKET: install.socket.path } : {}) };
  const sockets = metadata ? `${SOCKET_UNIT} ${METADATA_SOCKET_UNIT}` : SOCKET_UNIT;
  const files: ServiceFile[] = [
    {
      path: join(unitDir, SOCKET_UNIT),
      text: `${header(install)}
[Unit]
Description=tokend socket: Google Cloud access tokens for local programs

[Socket]
ListenStream=${socketPath}
FileDescriptorName=tokend
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes
Service=${SERVICE_UNIT}

[Install]
WantedBy=sockets.target
`,
    },
  ];
  if (metadata) {
    files.push({
      path: join(unitDir, METADATA_SOCKET_UNIT),
      text: `${header(install)}
[Unit]
Description=tokend metadata listener: access tokens for Google SDKs on loopback TCP

[Socket]
ListenStream=127.0.0.1:${install.metadataPort}
FileDescriptorName=metadata
NoDelay=yes
Service=${SERVICE_UNIT}

[Install]
WantedBy=sockets.target
`,
    });
  }
  const environmentLines = Object.entries(environment)
    .map(([name, value]) => `Environment=${quoteWord(`${name}=${value}`)}\n`)
    .join('');
  files.push({
    path: join(unitDir, SERVICE_UNIT),
    text: `${header(install)}
[Unit]
Description=tokend: Google Cloud access tokens for local programs
Documentation=${escapeSpecifiers(pathToFileURL(join(install.root, 'README.md')).href)}
Requires=${SOCKET_UNIT}
After=${sockets}

[Service]
Type=simple
ExecStart=${[install.node, install.entry, ...install.args].map(execWord).join(' ')}
ExecReload=kill -HUP $MAINPID
Sockets=${sockets}
Environment=TOKEND_SERVICE=systemd
${environmentLines}Restart=on-failure
RestartSec=2s
# The daemon lets requests in flight finish within 10 s of SIGTERM.
TimeoutStopSec=20s
UMask=0077
LimitCORE=0

# Sandbox. A user manager applies the file-system ones inside a user namespace (PrivateUsers=).
PrivateUsers=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
# The only place it writes: configuration, the store marker and the file store.
ReadWritePaths=${install.configDirIsDefault ? '-%E/tokend' : quoteWord(`-${install.configDir}`)}
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
# Not ProcSubset=pid: where the kernel's socket lookup cannot be used, /proc/net/tcp tells which user
# a connection to the metadata listener is from.
KeyringMode=private
# AF_NETLINK: the owner of each TCP connection is asked of the kernel over NETLINK_SOCK_DIAG (what ss
# does; the answer is the one /proc/net/tcp gives, without a walk over every socket).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# Not in @system-service: V8 protects its code pages with memory protection keys where the CPU has them.
SystemCallFilter=pkey_alloc pkey_free pkey_mprotect
SystemCallErrorNumber=EPERM
# No MemoryDenyWriteExecute=: V8's compilers make pages executable after writing them, and node
# aborts at its first compiled function under it (measured: test/e2e/service-units.test.ts).

[Install]
Also=${SOCKET_UNIT}
`,
  });
  return files;
}
