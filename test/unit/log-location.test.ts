/** Hints name the log where it really is: the journal under systemd, the agent's file under launchd. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonLogLocation, ownLogLocation } from '../../src/log-location.js';

test('the daemon names its own log by how it was started', () => {
  assert.equal(ownLogLocation({ TOKEND_SERVICE: 'systemd' }), 'the daemon log (`journalctl --user -u tokend`)');
  assert.equal(ownLogLocation({ TOKEND_SERVICE: 'launchd' }), 'the daemon log (~/Library/Logs/tokend/tokend.log)');
  assert.equal(ownLogLocation({ INVOCATION_ID: '5f1c0d9e2b7a4c1e' }), 'the daemon log (the stderr of `tokend serve`)', 'a shell in a terminal that runs as a unit');
  assert.equal(ownLogLocation({}), 'the daemon log (the stderr of `tokend serve`)');
});

test('the CLI, which cannot tell, names the service log of its platform and stderr', () => {
  assert.equal(daemonLogLocation('linux'), 'the daemon log (`journalctl --user -u tokend` for the service, else the stderr of `tokend serve`)');
  assert.equal(daemonLogLocation('darwin'), 'the daemon log (~/Library/Logs/tokend/tokend.log for the service, else the stderr of `tokend serve`)');
});
