import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  closeSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import {
  ConfigError,
  StoreCorruptError,
  StoreUnavailableError,
  UnsafePathError,
} from '../../src/errors.js';
import { createLogger, type Logger } from '../../src/log.js';
import { Secret } from '../../src/secret.js';
import { ensurePrivateDir, writeFileAtomic } from '../../src/fs/private-path.js';
import { FileStore } from '../../src/store/file-store.js';

const root = mkdtempSync(join(tmpdir(), 'tokend-file-store-'));
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
function freshDir(): string {
  counter += 1;
  return join(root, `case-${counter}`, 'tokend');
}

const mode = (path: string) => statSync(path).mode & 0o777;
const isRoot = process.getuid?.() === 0;
const posix = process.platform !== 'win32';

function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'warn',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

describe('FileStore without a passphrase', () => {
  test('creates the directory 0700 and the file 0600, plaintext format', { skip: !posix && 'POSIX modes' }, async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    assert.equal(store.kind, 'file');
    assert.equal(store.encrypted, false);
    assert.equal(store.description, `file ${join(dir, 'secrets.json')} (not encrypted)`);

    await store.setPassword('tokend', 'a@example.com', 'refresh-a');
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(store.path), 0o600);
    assert.deepEqual(JSON.parse(readFileSync(store.path, 'utf8')), {
      version: 1,
      generation: 1,
      entries: { tokend: { 'a@example.com': 'refresh-a' } },
    });
  });

  test('round trip, persisted across instances', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    assert.equal(await store.getPassword('tokend', 'a@example.com'), null);
    assert.deepEqual(await store.findCredentials('tokend'), []);
    assert.equal(await store.deletePassword('tokend', 'a@example.com'), false);

    await store.setPassword('tokend', 'a@example.com', 'one');
    await store.setPassword('tokend', 'b@example.com', 'two');
    await store.setPassword('other', 'a@example.com', 'three');
    await store.setPassword('tokend', 'a@example.com', 'one-updated');

    const again = new FileStore(dir);
    assert.equal(await again.getPassword('tokend', 'a@example.com'), 'one-updated');
    assert.deepEqual(await again.findCredentials('other'), [{ account: 'a@example.com', password: 'three' }]);
    assert.equal(await again.deletePassword('tokend', 'a@example.com'), true);
    assert.equal(await store.getPassword('tokend', 'a@example.com'), null);
    assert.deepEqual(await store.findCredentials('tokend'), [{ account: 'b@example.com', password: 'two' }]);
  });

  test('a custom file name', async () => {
    const dir = freshDir();
    const store = new FileStore(dir, { fileName: 'other.json' });
    await store.setPassword('tokend', 'a', 'x');
    assert.deepEqual(readdirSync(dir), ['other.json']);
  });

  test('atomic writes: a new file is renamed into place and no temp file is left', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await store.setPassword('tokend', 'a', '1');
    // Held open, the first file keeps its inode: a freed inode number could otherwise be reused by a
    // later write and make a replaced file look rewritten in place.
    const first = openSync(store.path, 'r');
    try {
      const before = fstatSync(first).ino;
      for (let i = 0; i < 10; i += 1) await store.setPassword('tokend', `account-${i}`, `secret-${i}`);
      await store.deletePassword('tokend', 'account-3');
      assert.notEqual(statSync(store.path).ino, before, 'the file is replaced, not rewritten in place');
      assert.equal(fstatSync(first).nlink, 0, 'the first file is unlinked, not written over');
    } finally {
      closeSync(first);
    }
    assert.deepEqual(readdirSync(dir), ['secrets.json']);
  });

  test('a failed atomic write leaves neither a temp file nor a changed target', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'target'), 'old', { mode: 0o600 });
    mkdirSync(join(dir, 'target.dir'));
    // Renaming a file over a non-empty directory fails after the temp file was written.
    writeFileSync(join(dir, 'target.dir', 'x'), '');
    const identity = await ensurePrivateDir(dir, { create: false, others: 'refuse', what: 'test' });
    await assert.rejects(writeFileAtomic(identity, 'target.dir', 'new'), StoreUnavailableError);
    assert.deepEqual(readdirSync(dir).sort(), ['target', 'target.dir']);
    assert.equal(readFileSync(join(dir, 'target'), 'utf8'), 'old');
  });

  test('concurrent setPassword calls in one process are all persisted', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    const count = 40;
    await Promise.all(
      Array.from({ length: count }, (_, i) => store.setPassword('tokend', `user${i}@example.com`, `secret-${i}`)),
    );
    const found = await new FileStore(dir).findCredentials('tokend');
    assert.equal(found.length, count);
    for (let i = 0; i < count; i += 1) {
      assert.ok(found.some((c) => c.account === `user${i}@example.com` && c.password === `secret-${i}`), 'found.some((c) => c.account === `user${i}@example.com` && c.password === `secret-${i}`)');
    }
    assert.deepEqual(readdirSync(dir), ['secrets.json']);
  });

  test('interleaved sets and deletes keep their order', async () => {
    const store = new FileStore(freshDir());
    const ops = [
      store.setPassword('tokend', 'a', '1'),
      store.setPassword('tokend', 'b', '2'),
      store.deletePassword('tokend', 'a'),
      store.setPassword('tokend', 'c', '3'),
      store.setPassword('tokend', 'b', '2b'),
    ];
    await Promise.all(ops);
    assert.deepEqual(
      (await store.findCredentials('tokend')).sort((x, y) => x.account.localeCompare(y.account)),
      [
        { account: 'b', password: '2b' },
        { account: 'c', password: '3' },
      ],
    );
  });

  test('corrupt JSON: StoreCorruptError naming the file, and the file is never overwritten', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, 'secrets.json');
    writeFileSync(path, '{"version":1,"entries":{', { mode: 0o600 });
    const store = new FileStore(dir);
    await assert.rejects(store.getPassword('tokend', 'a'), (err: unknown) => {
      assert.ok(err instanceof StoreCorruptError, 'err instanceof StoreCorruptError');
      assert.ok(err.message.includes(path), err.message);
      assert.match(err.hint ?? '', /mv /);
      return true;
    });
    await assert.rejects(store.setPassword('tokend', 'a', 'x'), StoreCorruptError);
    await assert.rejects(store.deletePassword('tokend', 'a'), StoreCorruptError);
    assert.equal(readFileSync(path, 'utf8'), '{"version":1,"entries":{');
  });

  test('wrong shapes and unknown versions are corrupt too', async () => {
    for (const content of ['[]', '{"version":2,"entries":{}}', '{"version":1}', '{"version":1,"entries":{"s":{"a":1}}}']) {
      const dir = freshDir();
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, 'secrets.json'), content, { mode: 0o600 });
      await assert.rejects(new FileStore(dir).findCredentials('s'), StoreCorruptError, content);
      assert.equal(readFileSync(join(dir, 'secrets.json'), 'utf8'), content);
    }
  });
});

describe('FileStore refuses unsafe paths', { skip: !posix && 'POSIX owners and modes' }, () => {
  test('a directory writable by group or others', async () => {
    for (const bad of [0o777, 0o770, 0o702]) {
      const dir = freshDir();
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, bad);
      await assert.rejects(new FileStore(dir).getPassword('tokend', 'a'), (err: unknown) => {
        assert.ok(err instanceof UnsafePathError, 'err instanceof UnsafePathError');
        assert.ok(err.message.includes(dir), 'err.message.includes(dir)');
        assert.equal(err.hint, `run \`chmod 700 ${dir}\``);
        return true;
      });
      assert.deepEqual(readdirSync(dir), [], 'nothing written');
    }
  });

  test('a directory owned by another user', { skip: !isRoot && 'needs root to chown' }, async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, 65534, 65534);
    await assert.rejects(new FileStore(dir).setPassword('tokend', 'a', 'x'), (err: unknown) => {
      assert.ok(err instanceof UnsafePathError, 'err instanceof UnsafePathError');
      assert.match(err.message, /owned by uid 65534/);
      return true;
    });
  });

  test('a file that is not 0600, or owned by another user, or a symlink', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, 'secrets.json');
    writeFileSync(path, '{"version":1,"entries":{}}', { mode: 0o644 });
    chmodSync(path, 0o644);
    await assert.rejects(new FileStore(dir).getPassword('tokend', 'a'), (err: unknown) => {
      assert.ok(err instanceof UnsafePathError, 'err instanceof UnsafePathError');
      assert.match(err.message, /0644/);
      assert.equal(err.hint, `chmod 600 ${path}`);
      return true;
    });
    await assert.rejects(new FileStore(dir).setPassword('tokend', 'a', 'x'), UnsafePathError);
    assert.equal(mode(path), 0o644, 'not silently fixed');

    chmodSync(path, 0o600);
    if (isRoot) {
      chownSync(path, 65534, 65534);
      await assert.rejects(new FileStore(dir).getPassword('tokend', 'a'), /owned by uid 65534/);
      chownSync(path, 0, 0);
    }

    rmSync(path);
    const elsewhere = join(root, `elsewhere-${counter}.json`);
    writeFileSync(elsewhere, '{"version":1,"entries":{}}', { mode: 0o600 });
    symlinkSync(elsewhere, path);
    await assert.rejects(new FileStore(dir).getPassword('tokend', 'a'), UnsafePathError);
  });

  test('an existing private directory with a umask-proof file mode', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const previous = process.umask(0o277);
    try {
      const store = new FileStore(dir);
      await store.setPassword('tokend', 'a', 'x');
      assert.equal(mode(store.path), 0o600);
      assert.equal(await new FileStore(dir).getPassword('tokend', 'a'), 'x');
    } finally {
      process.umask(previous);
    }
  });
});

describe('FileStore with a passphrase', () => {
  const passphrase = 'correct horse battery staple';

  test('encrypted round trip; the file holds neither the secret nor the account', async (t) => {
    const dir = freshDir();
    const store = new FileStore(dir, { passphrase });
    assert.equal(store.encrypted, true);
    assert.equal(store.description, `file ${join(dir, 'secrets.json')} (encrypted)`);

    const secret = 'refresh-token-1//0gSECRETVALUE';
    let started = performance.now();
    await store.setPassword('tokend', 'alice@example.com', secret);
    const firstMs = performance.now() - started; // includes the one scrypt derivation

    const raw = readFileSync(store.path, 'utf8');
    assert.ok(!raw.includes(secret), '!raw.includes(secret)');
    assert.ok(!raw.includes('SECRETVALUE'), '!raw.includes(\'SECRETVALUE\')');
    assert.ok(!raw.includes('alice@example.com'), '!raw.includes(\'alice@example.com\')');
    assert.ok(!raw.includes(Buffer.from(secret).toString('base64').slice(0, 12)), '!raw.includes(Buffer.from(secret).toString(\'base64\').slice(0, 12))');
    if (posix) assert.equal(mode(store.path), 0o600);

    const doc = JSON.parse(raw) as {
      version: number;
      encryption: { kdf: string; salt: string; N: number; r: number; p: number; cipher: string; iv: string; tag: string };
      ciphertext: string;
    };
    assert.equal(doc.version, 1);
    assert.deepEqual(Object.keys(doc).sort(), ['ciphertext', 'encryption', 'version']);
    assert.equal(doc.encryption.kdf, 'scrypt');
    assert.equal(doc.encryption.cipher, 'aes-256-gcm');
    assert.deepEqual([doc.encryption.N, doc.encryption.r, doc.encryption.p], [2 ** 17, 8, 1]);
    assert.equal(Buffer.from(doc.encryption.salt, 'base64').length, 16);
    assert.equal(Buffer.from(doc.encryption.iv, 'base64').length, 12);
    assert.equal(Buffer.from(doc.encryption.tag, 'base64').length, 16);

    // The derived key is cached: later operations do not pay for scrypt again.
    started = performance.now();
    for (let i = 0; i < 10; i += 1) assert.equal(await store.getPassword('tokend', 'alice@example.com'), secret);
    const tenGetsMs = performance.now() - started;
    t.diagnostic(`first write (with scrypt) ${firstMs.toFixed(1)} ms; 10 cached-key reads ${tenGetsMs.toFixed(1)} ms`);
    assert.ok(tenGetsMs < firstMs, `10 reads (${tenGetsMs} ms) should cost less than one derivation (${firstMs} ms)`);

    // A new IV per write, the same salt (so the cached key still applies).
    await store.setPassword('tokend', 'bob@example.com', 'second');
    const doc2 = JSON.parse(readFileSync(store.path, 'utf8')) as typeof doc;
    assert.equal(doc2.encryption.salt, doc.encryption.salt);
    assert.notEqual(doc2.encryption.iv, doc.encryption.iv);

    const again = new FileStore(dir, { passphrase: new Secret(passphrase) });
    assert.deepEqual(
      (await again.findCredentials('tokend')).sort((x, y) => x.account.localeCompare(y.account)),
      [
        { account: 'alice@example.com', password: secret },
        { account: 'bob@example.com', password: 'second' },
      ],
    );
    assert.deepEqual(readdirSync(dir), ['secrets.json']);
  });

  test('wrong passphrase: StoreUnavailableError, and the file is left untouched', async () => {
    const dir = freshDir();
    await new FileStore(dir, { passphrase }).setPassword('tokend', 'a', 'x');
    const path = join(dir, 'secrets.json');
    const before = readFileSync(path);
    const mtime = statSync(path).mtimeMs;

    const wrong = new FileStore(dir, { passphrase: 'not the passphrase' });
    await assert.rejects(wrong.getPassword('tokend', 'a'), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError, 'err instanceof StoreUnavailableError');
      assert.match(err.message, /wrong passphrase/);
      assert.match(err.hint ?? '', /TOKEND_FILE_PASSPHRASE/);
      assert.ok(!err.message.includes('not the passphrase'), '!err.message.includes(\'not the passphrase\')');
      return true;
    });
    await assert.rejects(wrong.setPassword('tokend', 'b', 'y'), /wrong passphrase/);
    await assert.rejects(wrong.deletePassword('tokend', 'a'), /wrong passphrase/);
    await assert.rejects(wrong.open(), /wrong passphrase/);
    assert.deepEqual(readFileSync(path), before);
    assert.equal(statSync(path).mtimeMs, mtime);
  });

  test('an encrypted file opened without a passphrase is refused, never downgraded', async () => {
    const dir = freshDir();
    await new FileStore(dir, { passphrase }).setPassword('tokend', 'a', 'x');
    const path = join(dir, 'secrets.json');
    const before = readFileSync(path);

    const plain = new FileStore(dir);
    await assert.rejects(plain.getPassword('tokend', 'a'), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError, 'err instanceof StoreUnavailableError');
      assert.match(err.message, /is encrypted/);
      assert.match(err.hint ?? '', /set TOKEND_FILE_PASSPHRASE/);
      return true;
    });
    await assert.rejects(plain.setPassword('tokend', 'b', 'y'), StoreUnavailableError);
    assert.deepEqual(readFileSync(path), before);
  });

  test('a plaintext file opened with a passphrase is encrypted on the next write, with one warning', async () => {
    const dir = freshDir();
    await new FileStore(dir).setPassword('tokend', 'a', 'plain-secret');
    const { logger, lines } = captureLogger();
    const store = new FileStore(dir, { passphrase, logger });

    assert.equal(await store.getPassword('tokend', 'a'), 'plain-secret');
    assert.equal(await store.getPassword('tokend', 'a'), 'plain-secret');
    assert.ok(readFileSync(store.path, 'utf8').includes('plain-secret'), 'reads alone do not rewrite');
    await store.setPassword('tokend', 'b', 'second');

    const raw = readFileSync(store.path, 'utf8');
    assert.ok(!raw.includes('plain-secret'), '!raw.includes(\'plain-secret\')');
    assert.ok('encryption' in (JSON.parse(raw) as object), '\'encryption\' in (JSON.parse(raw) as object)');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 40);
    assert.match(String(lines[0]!.msg), /not encrypted.*encrypted on the next write/);
    assert.ok(!JSON.stringify(lines).includes('plain-secret'), '!JSON.stringify(lines).includes(\'plain-secret\')');

    const again = new FileStore(dir, { passphrase });
    assert.equal(await again.getPassword('tokend', 'a'), 'plain-secret');
    assert.equal(await again.getPassword('tokend', 'b'), 'second');
    await assert.rejects(new FileStore(dir).getPassword('tokend', 'a'), /is encrypted/);
  });

  test('a damaged encryption header is corrupt, not a wrong passphrase', async () => {
    const dir = freshDir();
    await new FileStore(dir, { passphrase }).setPassword('tokend', 'a', 'x');
    const path = join(dir, 'secrets.json');
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { encryption: Record<string, unknown> };
    for (const damage of [{ N: 2 ** 40 }, { N: 1000 }, { iv: 'AAAA' }, { cipher: 'aes-128-cbc' }, { salt: 42 }]) {
      const damaged = JSON.stringify({ ...doc, encryption: { ...doc.encryption, ...damage } });
      writeFileSync(path, damaged, { mode: 0o600 });
      await assert.rejects(new FileStore(dir, { passphrase }).getPassword('tokend', 'a'), StoreCorruptError);
      assert.equal(readFileSync(path, 'utf8'), damaged);
    }
  });

  test('an empty passphrase is a configuration error', () => {
    assert.throws(() => new FileStore(freshDir(), { passphrase: '' }), ConfigError);
  });
});

describe('FileStore against hostile files and crashes', () => {
  const passphrase = 'correct horse battery staple';

  test('regression: KDF parameters from the header — only the sets tokend writes are accepted, fast', async () => {
    const dir = freshDir();
    await new FileStore(dir, { passphrase }).setPassword('tokend', 'a', 'x');
    const path = join(dir, 'secrets.json');
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { encryption: Record<string, unknown> };
    const huge = JSON.stringify({ ...doc, encryption: { ...doc.encryption, N: 2 ** 20, r: 32, p: 16 } });
    writeFileSync(path, huge, { mode: 0o600 });
    const started = Date.now();
    await assert.rejects(new FileStore(dir, { passphrase }).getPassword('tokend', 'a'), /scrypt parameters tokend never writes/);
    assert.ok(Date.now() - started < 1_000, 'refused before deriving anything');
  });

  test('a file written with the old KDF parameters is read, then re-encrypted with the current ones', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, 'secrets.json');
    // Written as an older tokend did: N = 2^15.
    const { scryptSync, createCipheriv, randomBytes } = await import('node:crypto');
    const salt = randomBytes(16);
    const key = scryptSync(passphrase, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
    cipher.setAAD(Buffer.from('tokend secrets file v1'));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify({ entries: { tokend: { a: 'old-secret' } } })), cipher.final()]);
    const header = { kdf: 'scrypt', salt: salt.toString('base64'), N: 2 ** 15, r: 8, p: 1, cipher: 'aes-256-gcm', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
    writeFileSync(path, JSON.stringify({ version: 1, encryption: header, ciphertext: ciphertext.toString('base64') }), { mode: 0o600 });
    const legacy = new FileStore(dir, { passphrase });
    assert.equal(await legacy.getPassword('tokend', 'a'), 'old-secret');
    await legacy.setPassword('tokend', 'b', 'y');
    const after = JSON.parse(readFileSync(path, 'utf8')) as { encryption: { N: number; salt: string } };
    assert.equal(after.encryption.N, 2 ** 17);
    assert.notEqual(after.encryption.salt, header.salt);
    assert.equal(await new FileStore(dir, { passphrase }).getPassword('tokend', 'a'), 'old-secret');
  });

  test('regression: a FIFO in place of the file is refused at once instead of blocking the open', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', ['-m', '600', join(dir, 'secrets.json')]);
    await assert.rejects(new FileStore(dir).open(), (error: unknown) => error instanceof UnsafePathError && /not a regular file/.test(error.message));
  });

  test('regression: temp files left by a crash — the newest complete one newer than the file wins; the rest are deleted', async () => {
    const dir = freshDir();
    const store = new FileStore(dir, { passphrase });
    await store.setPassword('tokend', 'a', 'generation-1');
    const path = join(dir, 'secrets.json');
    const gen1 = readFileSync(path);
    await store.setPassword('tokend', 'a', 'generation-2');
    const gen2 = readFileSync(path);
    await store.setPassword('tokend', 'a', 'generation-3');
    const gen3 = readFileSync(path);
    // The file is at generation 2; a crash left generation 3 and an old generation 1 as temp files,
    // and one cut off in mid-write.
    writeFileSync(path, gen2, { mode: 0o600 });
    writeFileSync(join(dir, '.secrets.json.aaaaaaaaaaaa.tmp'), gen3, { mode: 0o600 });
    writeFileSync(join(dir, '.secrets.json.bbbbbbbbbbbb.tmp'), gen1, { mode: 0o600 });
    writeFileSync(join(dir, '.secrets.json.cccccccccccc.tmp'), gen3.subarray(0, gen3.length / 2), { mode: 0o600 });
    const reopened = new FileStore(dir, { passphrase });
    assert.equal(await reopened.getPassword('tokend', 'a'), 'generation-3');
    assert.deepEqual(readdirSync(dir), ['secrets.json']);

    // Only stale ones: the file stays, the leftovers go.
    writeFileSync(join(dir, '.secrets.json.dddddddddddd.tmp'), gen1, { mode: 0o600 });
    assert.equal(await new FileStore(dir, { passphrase }).getPassword('tokend', 'a'), 'generation-3');
    assert.deepEqual(readdirSync(dir), ['secrets.json']);
  });

  test('regression: a temp file that cannot be read for another reason than damage (no passphrase) stops the open and is kept', async () => {
    const dir = freshDir();
    const plain = new FileStore(dir);
    await plain.setPassword('tokend', 'a', 'generation-1');
    const path = join(dir, 'secrets.json');
    const gen1 = readFileSync(path);
    // The first encrypted write crashed before its rename; the daemon then starts without the passphrase.
    const encrypted = new FileStore(dir, { passphrase });
    await encrypted.setPassword('tokend', 'a', 'rotated');
    const temp = join(dir, '.secrets.json.eeeeeeeeeeee.tmp');
    writeFileSync(temp, readFileSync(path), { mode: 0o600 });
    writeFileSync(path, gen1, { mode: 0o600 });
    await assert.rejects(new FileStore(dir).open(), /is encrypted and no passphrase was given/);
    assert.ok(readdirSync(dir).includes('.secrets.json.eeeeeeeeeeee.tmp'), 'the temp file is kept');
    assert.equal(await new FileStore(dir, { passphrase }).getPassword('tokend', 'a'), 'rotated');
  });
});

describe('owner-only directories (src/fs/private-path.ts)', () => {
  test('regression: each unsafe mode bit alone is refused (group-writable, other-writable), and another owner', { skip: !posix && 'POSIX modes' }, async () => {
    for (const bad of [0o720, 0o702]) {
      const dir = freshDir();
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, bad);
      await assert.rejects(ensurePrivateDir(dir, { create: false, others: 'tighten', what: 'test' }), /writable by other users/, `mode ${bad.toString(8)}`);
    }
    if (isRoot) {
      const dir = freshDir();
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chownSync(dir, 65534, 65534);
      await assert.rejects(ensurePrivateDir(dir, { create: false, others: 'tighten', what: 'test' }), /owned by uid 65534, not by you/);
    }
    const ok = freshDir();
    mkdirSync(ok, { recursive: true });
    chmodSync(ok, 0o755);
    await ensurePrivateDir(ok, { create: false, others: 'tighten', what: 'test' });
    assert.equal(mode(ok), 0o700, 'readable by others only: tightened to 0700');
  });
});
