import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { defaultConfigDir, defaultSocketPath } from '../../src/config/paths.js';
import { ConfigError } from '../../src/errors.js';

function configDirWith(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'tokend-config-'));
  writeFileSync(join(dir, 'config.json'), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}

test('flag beats env beats file beats default, and each value knows its source', () => {
  const dir = configDirWith({ store: 'file', socket: '/tmp/from-file.sock', logLevel: 'warn' });
  const env = { TOKEND_CONFIG_DIR: dir, TOKEND_STORE: 'memory', TOKEND_SOCKET: '/tmp/from-env.sock' };
  const config = loadConfig({ socket: '/tmp/from-flag.sock' }, env);
  assert.equal(config.settings.socket, '/tmp/from-flag.sock');
  assert.equal(config.settings.store, 'memory');
  assert.equal(config.settings.logLevel, 'warn');
  assert.equal(config.settings.loginTimeoutSeconds, 300);
  assert.deepEqual(
    [config.sources.socket, config.sources.store, config.sources.logLevel, config.sources.loginTimeoutSeconds],
    ['flag', 'env', 'file', 'default'],
  );
  assert.ok(Object.isFrozen(config.settings), 'Object.isFrozen(config.settings)');
});

test('unknown keys in the config file are rejected by name', () => {
  const dir = configDirWith({ store: 'file', sockett: '/x', passphrase: 'no' });
  assert.throws(() => loadConfig({}, { TOKEND_CONFIG_DIR: dir }), (error: unknown) => {
    assert.ok(error instanceof ConfigError, 'error instanceof ConfigError');
    assert.match(error.message, /unknown settings: sockett, passphrase/);
    return true;
  });
});

test('bad values are rejected with where they came from', () => {
  assert.throws(() => loadConfig({}, { TOKEND_CONFIG_DIR: configDirWith('{'), HOME: '/h' }), /not valid JSON/);
  assert.throws(() => loadConfig({}, { TOKEND_CONFIG_DIR: configDirWith({}), TOKEND_STORE: 'vault' }), /TOKEND_STORE must be one of auto, keychain, file, memory/);
  assert.throws(() => loadConfig({}, { TOKEND_CONFIG_DIR: configDirWith({ loginTimeoutSeconds: 5 }) }), /loginTimeoutSeconds.*from 10 to 3600/);
});

test('regression: a bad value in the file is refused even while a variable or flag overrides it', () => {
  const dir = configDirWith({ store: 5 });
  assert.throws(() => loadConfig({}, { TOKEND_CONFIG_DIR: dir, TOKEND_STORE: 'memory' }), /"store" in .*config\.json must be one of/);
  const socketOnly = configDirWith({ socket: '' });
  assert.throws(() => loadConfig({ socket: '/tmp/flag.sock' }, { TOKEND_CONFIG_DIR: socketOnly }), /"socket" in .*config\.json must be a non-empty string/);
});

test('resourceManagerUrl: Google\'s by default; https, or plain http to loopback only', () => {
  const dir = configDirWith({});
  assert.equal(loadConfig({}, { TOKEND_CONFIG_DIR: dir }).settings.resourceManagerUrl, 'https://cloudresourcemanager.googleapis.com');
  for (const good of ['https://crm.example.internal/', 'http://127.0.0.1:9000/', 'http://localhost:9000/', 'http://[::1]:9000/']) {
    assert.equal(loadConfig({}, { TOKEND_CONFIG_DIR: dir, TOKEND_RESOURCE_MANAGER_URL: good }).settings.resourceManagerUrl, good);
  }
  for (const bad of ['http://crm.example/', 'ftp://127.0.0.1/', 'not a url']) {
    assert.throws(() => loadConfig({}, { TOKEND_CONFIG_DIR: dir, TOKEND_RESOURCE_MANAGER_URL: bad }), /TOKEND_RESOURCE_MANAGER_URL must be an https:\/\/ URL \(plain http only on loopback\)/, bad);
  }
});

test('the passphrase comes from the environment only: a config file naming one is refused', () => {
  const config = loadConfig({}, { TOKEND_CONFIG_DIR: configDirWith({}), TOKEND_FILE_PASSPHRASE: 'pw' });
  assert.equal(config.filePassphrase, 'pw');
  assert.equal(loadConfig({}, { TOKEND_CONFIG_DIR: configDirWith({}) }).filePassphrase, undefined);
  for (const key of ['passphrase', 'filePassphrase']) {
    assert.throws(() => loadConfig({}, { TOKEND_CONFIG_DIR: configDirWith({ [key]: 'pw' }) }), /unknown setting/, key);
  }
});

test('default paths follow XDG, with private fallbacks', () => {
  assert.equal(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' }, 'linux', '/h'), '/run/user/1000/tokend/tokend.sock');
  // regression: never a predictable name in a shared /tmp that another user could create first
  assert.equal(defaultSocketPath({ HOME: '/home/alice' }, 'linux'), '/home/alice/.local/state/tokend/tokend.sock');
  assert.equal(defaultSocketPath({ HOME: '/home/alice', XDG_STATE_HOME: '/srv/state' }, 'linux'), '/srv/state/tokend/tokend.sock');
  assert.equal(defaultSocketPath({ HOME: '/Users/alice', TMPDIR: '/tmp/' }, 'darwin'), '/Users/alice/Library/Caches/tokend/tokend.sock');
  assert.equal(defaultConfigDir({ XDG_CONFIG_HOME: '/c' }, 'linux', '/h'), '/c/tokend');
  assert.equal(defaultConfigDir({}, 'linux', '/h'), '/h/.config/tokend');
  assert.equal(defaultConfigDir({}, 'darwin', '/Users/a'), '/Users/a/Library/Application Support/tokend');
  assert.equal(defaultConfigDir({ TOKEND_CONFIG_DIR: '/x' }, 'linux', '/h'), '/x');
});

test('regression: relative or empty XDG and HOME values are ignored, never resolved against the working directory', () => {
  assert.equal(defaultSocketPath({ HOME: '/home/alice', XDG_RUNTIME_DIR: 'run', XDG_STATE_HOME: '' }, 'linux'), '/home/alice/.local/state/tokend/tokend.sock');
  assert.equal(defaultConfigDir({ XDG_CONFIG_HOME: 'relative' }, 'linux', '/h'), '/h/.config/tokend');
  assert.ok(defaultSocketPath({ HOME: '' }, 'linux').startsWith('/'), 'defaultSocketPath({ HOME: \'\' }, \'linux\').startsWith(\'/\')');
});
