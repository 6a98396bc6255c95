/**
 * Our KVP daemon on its own: a truncated pool file loses no complete record and is repaired by the next
 * write; SET_IP_INFO with shell metacharacters or non-addresses is refused (HV_INVALIDARG) without writing
 * or running anything; a valid one writes the ifcfg file and runs hv_set_ifconfig with it as one argument.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { KvpDaemon } from '../../../../src/guest/daemons/kvp/daemon.ts';
import { ifcfgText } from '../../../../src/guest/daemons/kvp/ip-config.ts';
import { KVP_RECORD_SIZE, parsePool } from '../../../../src/guest/daemons/kvp/pool-file.ts';
import { HV_INVALIDARG, HV_S_OK } from '../../../../src/protocol/ic/icmsg.ts';
import {
  getKvpEnum,
  kvpMsgError,
  newKvpMsg,
  putKvpIp,
  putKvpValue,
  setKvpEnumIndex,
} from '../../../../src/protocol/uapi/kvp.ts';

const dir = mkdtempSync(`${tmpdir()}/kvp-daemon-`);
after(() => rmSync(dir, { recursive: true, force: true }));

function fakeSys(): { scripts: string; sysNet: string; log: string } {
  const scripts = `${dir}/scripts`;
  const sysNet = `${dir}/sys`;
  const log = `${dir}/calls.log`;
  mkdirSync(scripts, { recursive: true });
  mkdirSync(`${sysNet}/eth0/device`, { recursive: true });
  writeFileSync(`${sysNet}/eth0/address`, '00:15:5d:00:00:01\n');
  writeFileSync(`${sysNet}/eth0/device/device_id`, '{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n');
  writeFileSync(`${scripts}/hv_set_ifconfig`, `#!/bin/sh\nfor a in "$@"; do echo "arg:$a" >> ${log}; done\n`);
  chmodSync(`${scripts}/hv_set_ifconfig`, 0o755);
  return { scripts, sysNet, log };
}

test('a truncated pool file: complete records stay readable, the next SET repairs the file', async () => {
  const root = `${dir}/trunc`;
  const d = new KvpDaemon({ root });
  try {
    for (const k of ['a', 'b', 'c']) {
      const m = newKvpMsg(1, 1);
      putKvpValue(m, k, `value-${k}`);
      assert.equal(kvpMsgError(await d.handle(m)), HV_S_OK);
    }
    const f = `${root}/.kvp_pool_1`;
    truncateSync(f, 2 * KVP_RECORD_SIZE + 700); // a writer died mid-record
    const e = newKvpMsg(3, 1);
    setKvpEnumIndex(e, 1);
    assert.deepEqual(getKvpEnum(await d.handle(e)), { index: 1, key: 'b', value: 'value-b' });
    const m = newKvpMsg(1, 1);
    putKvpValue(m, 'd', 'value-d');
    await d.handle(m);
    assert.deepEqual(
      parsePool(readFileSync(f)).map((r) => r.key),
      ['a', 'b', 'd'],
    );
    assert.equal(readFileSync(f).length, 3 * KVP_RECORD_SIZE);
  } finally {
    d.stop();
  }
});

test('SET_IP_INFO with shell metacharacters is refused: nothing written, nothing run', async () => {
  const s = fakeSys();
  const root = `${dir}/ip`;
  const d = new KvpDaemon({ root, scripts: s.scripts, sysNet: s.sysNet });
  const pwned = `${dir}/pwned`;
  try {
    for (const bad of [
      `192.0.2.5;$(touch ${pwned})`,
      `192.0.2.5 && touch ${pwned}`,
      '`touch x`',
      '192.0.2.256',
      '../../etc/passwd',
    ]) {
      const m = newKvpMsg(5, 1);
      putKvpIp(m, {
        adapterId: '{f8615163-df3e-46c5-913f-f2d2f965ed0e}',
        addrFamily: 1,
        dhcpEnabled: false,
        ipAddr: bad,
        subNet: '255.255.255.0',
        gateWay: '',
        dnsAddr: '',
      });
      assert.equal(kvpMsgError(await d.handle(m)), HV_INVALIDARG, bad);
    }
    assert.equal(existsSync(pwned), false);
    assert.equal(existsSync(`${root}/ifcfg-eth0`), false);
    assert.equal(existsSync(s.log), false);

    const ok = newKvpMsg(5, 1);
    putKvpIp(ok, {
      adapterId: '{F8615163-DF3E-46C5-913F-F2D2F965ED0E}',
      addrFamily: 3,
      dhcpEnabled: false,
      ipAddr: '192.0.2.55;2001:db8::55',
      subNet: '255.255.255.0;64',
      gateWay: '192.0.2.1',
      dnsAddr: '192.0.2.53',
    });
    assert.equal(kvpMsgError(await d.handle(ok)), HV_S_OK);
    assert.equal(
      readFileSync(`${root}/ifcfg-eth0`, 'utf8'),
      'HWADDR=00:15:5D:00:00:01\nDEVICE=eth0\nBOOTPROTO=none\nIPADDR0=192.0.2.55\n' +
        'IPV6ADDR=2001:0db8:0000:0000:0000:0000:0000:0055\nNETMASK0=255.255.255.0\nIPV6NETMASK=64\nGATEWAY=192.0.2.1\nDNS1=192.0.2.53\n',
    );
    assert.equal(readFileSync(s.log, 'utf8'), `arg:${root}/ifcfg-eth0\n`);
  } finally {
    d.stop();
  }
});

test('ifcfg numbering: IPADDR0.., GATEWAY then GATEWAY1, IPV6ADDR then IPV6ADDR_1 (vmbus-core-ics.md §7.3)', () => {
  const t = ifcfgText('eth1', 'AA', {
    adapterId: '',
    addrFamily: 3,
    dhcpEnabled: true,
    ipAddr: '10.0.0.1;10.0.0.2;fe80::1;fe80::2',
    subNet: '',
    gateWay: '10.0.0.254;10.0.0.253',
    dnsAddr: '1.1.1.1;2606:4700::1111',
  });
  assert.equal(
    t,
    'HWADDR=AA\nDEVICE=eth1\nBOOTPROTO=dhcp\nIPADDR0=10.0.0.1\nIPADDR1=10.0.0.2\nIPV6ADDR=fe80:0000:0000:0000:0000:0000:0000:0001\n' +
      'IPV6ADDR_1=fe80:0000:0000:0000:0000:0000:0000:0002\nGATEWAY=10.0.0.254\nGATEWAY1=10.0.0.253\nDNS1=1.1.1.1\nDNS2=2606:4700::1111\n',
  );
});
