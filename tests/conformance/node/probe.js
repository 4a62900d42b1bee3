// One scripted session of the etcd3 npm client against the endpoint in argv[2]. Prints one
// line per step; node_client_conformance_test.py runs it against etcd and geoetcd and
// compares the transcripts. Any unexpected exception ends the session with "FAIL".
const { Etcd3 } = require('etcd3');
const { noop } = require('cockatiel');

async function step(name, fn) {
  try {
    console.log(name, JSON.stringify(await fn()));
  } catch (e) {
    console.log(name, 'error', e.constructor.name, e.message);
  }
}

(async () => {
  // No retries or circuit breaker: every error surfaces as it came from the server.
  const client = new Etcd3({ hosts: process.argv[2], faultHandling: { host: () => noop, global: noop } });
  try {
    await step('put a', () => client.put('node/a').value('1').then(() => 'ok'));
    await step('put b', () => client.put('node/b').value('2').then(() => 'ok'));
    await step('get a', () => client.get('node/a').string());
    await step('get missing', () => client.get('node/none').string());
    await step('prefix', () => client.getAll().prefix('node/').strings());
    await step('count', () => client.getAll().prefix('node/').count());
    await step('watch', async () => {
      const w = await client.watch().key('node/w').create();
      const got = new Promise(r => w.on('put', kv => r(kv.value.toString())));
      await client.put('node/w').value('watched');
      const v = await got;
      await w.cancel();
      return v;
    });
    await step('lease', async () => {
      const lease = client.lease(5);
      await lease.put('node/l').value('leased');
      const before = await client.get('node/l').string();
      await lease.revoke();
      return [before, await client.get('node/l').string()];
    });
    await step('txn', async () => {
      const r = await client.if('node/a', 'Value', '==', '1').then(client.put('node/a').value('3')).commit();
      return [r.succeeded, await client.get('node/a').string()];
    });
    await step('txn fails', async () => {
      const r = await client.if('node/a', 'Value', '==', '1').then(client.put('node/a').value('4')).commit();
      return [r.succeeded, await client.get('node/a').string()];
    });
    await step('empty key', () => client.put('').value('x'));
    await step('too big', () => client.put('node/big').value('x'.repeat(2 * 1024 * 1024)));
    await step('value 1 MiB', async () => {
      await client.put('node/m').value('y'.repeat(1024 * 1024));
      return (await client.get('node/m').string()).length;
    });
    await step('delete', () => client.delete().prefix('node/').then(r => r.deleted));
    await step('after delete', () => client.getAll().prefix('node/').count());
  } catch (e) {
    console.log('FAIL', e);
    process.exitCode = 1;
  }
  client.close();
})();
