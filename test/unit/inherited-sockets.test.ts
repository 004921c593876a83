import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeInheritedSockets } from '../../src/server/inherited-sockets.js';

test('sockets passed by systemd are taken by name from fd 3, and the variables removed', () => {
  const env: Record<string, string | undefined> = { LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'metadata:tokend', HOME: '/h' };
  assert.deepEqual(takeInheritedSockets(env, 42), { metadata: 3, unix: 4 });
  assert.deepEqual(env, { HOME: '/h' }, 'no child believes the sockets are its own');
  assert.deepEqual(takeInheritedSockets({ LISTEN_PID: '42', LISTEN_FDS: '1', LISTEN_FDNAMES: 'tokend.socket' }, 42), { unix: 3 }, 'systemd\'s default name');
  assert.deepEqual(takeInheritedSockets({ LISTEN_PID: '42', LISTEN_FDS: '1' }, 42), { unix: 3 }, 'one unnamed socket is the Unix socket');
});

test('sockets meant for another process, or none, are not taken (but the variables are still removed)', () => {
  const env: Record<string, string | undefined> = { LISTEN_PID: '41', LISTEN_FDS: '1', LISTEN_FDNAMES: 'tokend' };
  assert.deepEqual(takeInheritedSockets(env, 42), {});
  assert.deepEqual(env, {});
  assert.deepEqual(takeInheritedSockets({}, 42), {});
});

test('what cannot be told apart is refused with the unit setting that fixes it', () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ LISTEN_FDS: 'two' }, /LISTEN_FDS="two", which is not a number/],
    [{ LISTEN_FDS: '0' }, /LISTEN_FDS="0"/],
    [{ LISTEN_FDS: '2' }, /passed 2 sockets but no names/],
    [{ LISTEN_FDS: '2', LISTEN_FDNAMES: 'tokend' }, /passed 2 sockets but 1 names/],
    [{ LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' }, /a socket named "web", which tokend does not know/],
    [{ LISTEN_FDS: '2', LISTEN_FDNAMES: 'tokend:tokend.socket' }, /two sockets for the Unix socket/],
  ];
  for (const [variables, message] of cases) {
    assert.throws(
      () => takeInheritedSockets({ LISTEN_PID: '42', ...variables }, 42),
      (error: Error & { hint?: string }) => message.test(error.message) && /FileDescriptorName=tokend/.test(error.hint ?? ''),
      JSON.stringify(variables),
    );
  }
});
