/**
 * The service definitions: the copies shipped in systemd/ and launchd/ are what `tokend service
 * install` writes for a typical installation (UPDATE_SERVICE_FILES=1 rewrites them), and every value
 * that reaches a unit or the plist is escaped for it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { describeInstallation, type Installation } from '../../src/service/installation.js';
import { managerEnvironment } from '../../src/service/run-command.js';
import { launchAgent } from '../../src/service/launchd-plist.js';
import { systemdUnits } from '../../src/service/systemd-units.js';

const ROOT = new URL('../../', import.meta.url);

function example(overrides: Partial<Installation> = {}): Installation {
  return {
    version: '0.1.0',
    node: '/usr/local/bin/node',
    entry: '/usr/local/lib/node_modules/tokend/bin/tokend.js',
    root: '/usr/local/lib/node_modules/tokend',
    args: ['serve'],
    home: '/home/you',
    uid: 1000,
    configDir: '/home/you/.config/tokend',
    configDirIsDefault: true,
    socket: { path: '/run/user/1000/tokend/tokend.sock', chosen: false },
    metadataPort: 8085,
    environment: {},
    withheld: [],
    ...overrides,
  };
}

const macExample = (overrides: Partial<Installation> = {}) =>
  example({
    node: '/opt/homebrew/bin/node',
    entry: '/opt/homebrew/lib/node_modules/tokend/bin/tokend.js',
    root: '/opt/homebrew/lib/node_modules/tokend',
    home: '/Users/you',
    uid: 501,
    configDir: '/Users/you/Library/Application Support/tokend',
    socket: { path: '/Users/you/Library/Caches/tokend/tokend.sock', chosen: false },
    metadataPort: undefined,
    ...overrides,
  });

test('systemd/ and launchd/ hold what install writes for a typical installation', () => {
  const shipped = [
    ...systemdUnits(example(), 'systemd').map((file) => ({ path: file.path, text: file.text.replace(/\(tokend [^)]+\)/, '(tokend VERSION)') })),
    { path: 'launchd/dev.tokend.plist', text: launchAgent(macExample()).text.replace(/\(tokend [^)]+\)/, '(tokend VERSION)') },
  ];
  for (const file of shipped) {
    const url = new URL(file.path, ROOT);
    if (process.env.UPDATE_SERVICE_FILES === '1') writeFileSync(url, file.text);
    assert.equal(readFileSync(url, 'utf8'), file.text, `${file.path} differs from what install writes: run \`UPDATE_SERVICE_FILES=1 node --import tsx --test test/unit/service-files.test.ts\``);
  }
});

test('the metadata socket unit exists only when a port is configured, and the service then takes both sockets', () => {
  const withPort = systemdUnits(example(), '/u');
  assert.deepEqual(withPort.map((file) => file.path), ['/u/tokend.socket', '/u/tokend-metadata.socket', '/u/tokend.service']);
  assert.match(withPort[2]!.text, /^Sockets=tokend\.socket tokend-metadata\.socket$/m);
  assert.match(withPort[1]!.text, /^ListenStream=127\.0\.0\.1:8085$/m);
  assert.match(withPort[1]!.text, /^FileDescriptorName=metadata$/m);
  const without = systemdUnits(example({ metadataPort: undefined }), '/u');
  assert.deepEqual(without.map((file) => file.path), ['/u/tokend.socket', '/u/tokend.service']);
  assert.match(without[1]!.text, /^Sockets=tokend\.socket$/m);
});

test('paths with spaces, quotes and percent signs reach ExecStart=, Environment= and ListenStream= intact', () => {
  const odd = example({
    node: '/opt/my node/bin/node',
    entry: '/home/you/100% "tokend"/bin/tokend.js',
    socket: { path: '/home/you/run %t/tokend.sock', chosen: true },
    configDir: '/home/you/my config',
    configDirIsDefault: false,
    environment: { TOKEND_STORE: 'keychain' },
  });
  const [socket, service] = systemdUnits({ ...odd, metadataPort: undefined }, '/u');
  assert.match(service!.text, /^ExecStart="\/opt\/my node\/bin\/node" "\/home\/you\/100%% \\"tokend\\"\/bin\/tokend\.js" serve$/m);
  assert.match(service!.text, /^Environment=TOKEND_STORE=keychain$/m);
  assert.match(service!.text, /^Environment="TOKEND_SOCKET=\/home\/you\/run %%t\/tokend\.sock"$/m);
  assert.match(service!.text, /^ReadWritePaths="-\/home\/you\/my config"$/m, 'one word, so systemd does not split it');
  assert.match(socket!.text, /^ListenStream=\/home\/you\/run %%t\/tokend\.sock$/m);
  const dollar = systemdUnits(example({ metadataPort: undefined, entry: '/opt/$HOME/bin/tokend.js', root: '/opt/my tokend' }), '/u')[1]!.text;
  assert.match(dollar, /^ExecStart=\/usr\/local\/bin\/node \/opt\/\$\$HOME\/bin\/tokend\.js serve$/m, 'a literal $ is not expanded');
  assert.match(dollar, /^Documentation=file:\/\/\/opt\/my%%20tokend\/README\.md$/m);
  const plain = systemdUnits(example(), '/u')[2]!.text;
  assert.match(plain, /^ReadWritePaths=-%E\/tokend$/m, 'the default config directory is found the way the daemon finds it');
  assert.match(systemdUnits(example(), '/u')[0]!.text, /^ListenStream=%t\/tokend\/tokend\.sock$/m);
});

test('the plist escapes XML and never carries a secret', () => {
  const plist = launchAgent(macExample({ entry: '/Users/you/a&b <c>/bin/tokend.js', environment: { TOKEND_LOG_LEVEL: 'debug' }, withheld: ['TOKEND_FILE_PASSPHRASE'] })).text;
  assert.match(plist, /<string>\/Users\/you\/a&amp;b &lt;c&gt;\/bin\/tokend\.js<\/string>/);
  assert.doesNotMatch(plist, /PASSPHRASE/);
});

test('what install takes from the shell: tokend settings, never a secret or a proxy URL; a control character is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tokend-installation-'));
  const env = { HOME: dir, TOKEND_CONFIG_DIR: join(dir, 'config'), TOKEND_STORE: 'keychain', TOKEND_FILE_PASSPHRASE: 'p4ss-phrase', HTTPS_PROXY: 'http://u:pw@proxy:3128', PATH: '/usr/bin' };
  const install = describeInstallation(loadConfig({}, env), env);
  assert.deepEqual(install.environment, { TOKEND_CONFIG_DIR: join(dir, 'config'), TOKEND_STORE: 'keychain' });
  assert.deepEqual(install.withheld, ['TOKEND_FILE_PASSPHRASE']);
  const written = [...systemdUnits(install, '/u').map((file) => file.text), launchAgent(install).text].join('\n');
  assert.ok(!written.includes('p4ss-phrase') && !written.includes('pw@proxy'), 'neither reaches a service file');
  const child = managerEnvironment(env);
  assert.deepEqual([child.TOKEND_FILE_PASSPHRASE, child.HTTPS_PROXY, child.PATH], [undefined, undefined, '/usr/bin'], 'nor systemctl or launchctl');
  const injected = { ...env, TOKEND_RESOURCE_MANAGER_URL: 'https://rm.example/\nExecStartPre=/bin/evil' };
  assert.throws(() => describeInstallation(loadConfig({}, injected), injected), /TOKEND_RESOURCE_MANAGER_URL holds a control character/);
});
