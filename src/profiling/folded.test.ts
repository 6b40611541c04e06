import { describe, expect, it } from 'vitest';
import { assertCpuProfile, toFolded, type CpuProfile } from './folded.ts';
import { looksLikeNode, parseListening } from './proc-net.ts';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });

describe('toFolded', () => {
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 10,
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 5] },
      { id: 2, callFrame: frame('main', 'file:///app/a.js', 9), children: [3, 4] },
      { id: 3, callFrame: frame('', 'file:///app/a.js', 19) },
      { id: 4, callFrame: frame('odd;name', 'node:internal/x', 0) },
      { id: 5, callFrame: frame('(idle)') },
    ],
    samples: [3, 3, 4, 5, 3, 1],
  };

  it('counts samples per root-to-leaf stack, heaviest first, without the root frame', () => {
    expect(toFolded(profile)).toBe(
      [
        'main (/app/a.js:10);(anonymous) (/app/a.js:20) 3',
        '(idle) 1',
        'main (/app/a.js:10);odd:name (node:internal/x:1) 1',
        '',
      ].join('\n'),
    );
  });

  it('survives a parent cycle in a malformed profile', () => {
    const bad: CpuProfile = {
      startTime: 0,
      endTime: 1,
      nodes: [
        { id: 1, callFrame: frame('a'), children: [2] },
        { id: 2, callFrame: frame('b'), children: [1] },
      ],
      samples: [2],
    };
    expect(toFolded(bad)).toMatch(/ 1\n$/);
  });

  it('rejects values that are not cpuprofiles', () => {
    expect(() => assertCpuProfile({ nodes: 'x' })).toThrow(/not a cpuprofile/);
    expect(() => assertCpuProfile({ nodes: [], samples: 3 })).toThrow(/samples must be an array/);
    expect(() => assertCpuProfile(profile)).not.toThrow();
  });
});

describe('proc-net', () => {
  it('parses listening sockets from /proc/net/tcp and tcp6 tables', () => {
    const v4 = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:240D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0',
      '   1: 0100007F:240D 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1',
    ].join('\n');
    expect(parseListening(v4, 4)).toEqual([{ address: '127.0.0.1', port: 9229, inode: 4242 }]);
    const v6 = [
      '  sl  local_address                         remote_address                        st ...',
      '   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0',
    ].join('\n');
    expect(parseListening(v6, 6)).toEqual([{ address: '::1', port: 8080, inode: 77 }]);
  });

  it('recognises node executables by file name', () => {
    expect(looksLikeNode('/usr/bin/node')).toBe(true);
    expect(looksLikeNode('/opt/node-v24/bin/nodejs')).toBe(true);
    expect(looksLikeNode('/usr/bin/node (deleted)')).toBe(true);
    expect(looksLikeNode('/bin/sh')).toBe(false);
    expect(looksLikeNode('/usr/bin/nodemon')).toBe(false);
  });
});
