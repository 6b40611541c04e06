import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeCgroupHost, openCgroups } from '../cgroups.ts';
import { chooseHierarchy, detectCgroupHost, parseMountinfo, type CgroupHost } from './detect.ts';

// Pure logic: mountinfo and controller files written to a temp dir, shaped like the kernel's.
let dir = '';
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-cgdetect-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function line(id: number, mountPoint: string, fsType: string, superOpts: string): string {
  return `${id} 23 0:${id} / ${mountPoint} rw,nosuid,nodev,noexec,relatime shared:${id} - ${fsType} ${fsType} ${superOpts}`;
}

function write(file: string, text: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

function host(files: { mountinfo: string; pressure?: string }): CgroupHost {
  const procPressure = path.join(dir, 'pressure');
  if (files.pressure !== undefined) write(path.join(procPressure, 'cpu'), files.pressure);
  return detectCgroupHost({ mountinfo: write(path.join(dir, 'mountinfo'), files.mountinfo), procPressure });
}

describe('cgroup host detection', () => {
  it('parses mountinfo: mount point (octal escapes undone), fs type after the "-" and the super options', () => {
    const mounts = parseMountinfo(
      [
        '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
        // no optional fields, and one with two
        '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 master:2 - cgroup cgroup rw,cpu,cpuacct',
        '50 31 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw,nsdelegate',
        'garbage line',
        '',
      ].join('\n'),
    );
    expect(mounts).toEqual([
      { mountPoint: '/sys/fs/cgroup', fsType: 'tmpfs', superOptions: ['rw', 'mode=755'] },
      { mountPoint: '/sys/fs/cgroup/cpu,cpuacct', fsType: 'cgroup', superOptions: ['rw', 'cpu', 'cpuacct'] },
      { mountPoint: '/mnt/with space', fsType: 'cgroup2', superOptions: ['rw', 'nsdelegate'] },
    ]);
  });

  it('a pure v2 host: mode v2, the root controllers, PSI, and v2 is chosen', () => {
    const root = path.join(dir, 'cg');
    write(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
    const h = host({
      mountinfo: line(30, root, 'cgroup2', 'rw,nsdelegate,memory_recursiveprot') + '\n',
      pressure:
        'some avg10=0.00 avg60=0.00 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
    });
    expect(h).toEqual({
      mode: 'v2',
      v1: {},
      v2Root: root,
      v2Controllers: ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'],
      psi: true,
    });
    expect(chooseHierarchy(h)).toEqual({ version: 2, root });
    expect(describeCgroupHost(h)).toEqual({
      mode: 'v2',
      controllers: { v1: [], v2: ['cpu', 'cpuset', 'hugetlb', 'io', 'memory', 'misc', 'pids', 'rdma'] },
      psi: true,
    });
  });

  it('a hybrid host like this one: v1 memory/cpu chosen, v2 root without them, named hierarchies ignored', () => {
    const root = path.join(dir, 'cg');
    for (const c of ['cpu', 'cpuacct', 'memory']) write(path.join(root, c, 'cgroup.procs'), '');
    write(path.join(root, 'unified', 'cgroup.controllers'), 'hugetlb\n');
    const h = host({
      mountinfo: [
        line(31, root, 'tmpfs', 'rw,mode=755'),
        line(32, `${root}/cpu`, 'cgroup', 'rw,cpu'),
        line(33, `${root}/cpuacct`, 'cgroup', 'rw,cpuacct'),
        line(35, `${root}/memory`, 'cgroup', 'rw,memory'),
        line(40, `${root}/systemd`, 'cgroup', 'rw,xattr,name=systemd'),
        line(41, `${root}/unified`, 'cgroup2', 'rw'),
      ].join('\n'),
      // psi=0 on the kernel command line: the file exists but reading it fails; here: no file
    });
    expect(h.mode).toBe('hybrid');
    expect(h.v1).toEqual({ cpu: `${root}/cpu`, cpuacct: `${root}/cpuacct`, memory: `${root}/memory` });
    expect(h.v2Root).toBe(`${root}/unified`);
    expect(h.v2Controllers).toEqual(['hugetlb']);
    expect(h.psi).toBe(false);
    expect(chooseHierarchy(h)).toEqual({ version: 1, root });
    expect(describeCgroupHost(h).psi).toBe(false);
  });

  it('a hybrid host whose memory and cpu were moved to v2 (v1 hierarchies unmounted) uses v2', () => {
    const root = path.join(dir, 'cg');
    write(path.join(root, 'unified', 'cgroup.controllers'), 'cpu memory\n');
    const h = host({
      mountinfo: [
        line(34, `${root}/cpuset`, 'cgroup', 'rw,cpuset'),
        line(41, `${root}/unified`, 'cgroup2', 'rw'),
      ].join('\n'),
      pressure: 'some avg10=1.00 avg60=0.50 avg300=0.10 total=99\n',
    });
    expect(h.mode).toBe('hybrid');
    expect(chooseHierarchy(h)).toEqual({ version: 2, root: `${root}/unified` });
    expect(describeCgroupHost(h).psi).toBe(true);
  });

  it('co-mounted cpu,cpuacct with a "cpu" link beside it is v1 with root the parent dir', () => {
    const root = path.join(dir, 'cg');
    write(path.join(root, 'cpu,cpuacct', 'cgroup.procs'), '');
    write(path.join(root, 'memory', 'cgroup.procs'), '');
    // the distributions' symlink cpu -> cpu,cpuacct, modelled by a directory with the same files
    write(path.join(root, 'cpu', 'cgroup.procs'), '');
    const h = host({
      mountinfo: [
        line(32, `${root}/cpu,cpuacct`, 'cgroup', 'rw,cpu,cpuacct'),
        line(35, `${root}/memory`, 'cgroup', 'rw,memory'),
      ].join('\n'),
    });
    expect(h.mode).toBe('v1');
    expect(h.v1['cpuacct']).toBe(`${root}/cpu,cpuacct`);
    expect(chooseHierarchy(h)).toEqual({ version: 1, root });
  });

  it('explains why limits are unavailable: hybrid with the controllers nowhere usable, v1 missing one, nothing mounted', () => {
    const root = path.join(dir, 'cg');
    write(path.join(root, 'unified', 'cgroup.controllers'), 'hugetlb\n');
    const hybrid = host({
      mountinfo: [
        line(35, `${root}/memory`, 'cgroup', 'rw,memory'),
        line(41, `${root}/unified`, 'cgroup2', 'rw'),
      ].join('\n'),
    });
    const c1 = chooseHierarchy(hybrid);
    expect(c1.version).toBeUndefined();
    expect(c1.version === undefined && c1.reason).toMatch(
      new RegExp(
        `cgroup v2 at ${root}/unified lacks 'memory' and 'cpu'.*'memory' is bound to the v1 hierarchy at ${root}/memory; 'cpu' is not offered`,
      ),
    );

    const v1Only = host({ mountinfo: line(35, `${root}/memory`, 'cgroup', 'rw,memory') });
    expect(v1Only.mode).toBe('v1');
    const c2 = chooseHierarchy(v1Only);
    expect(c2.version === undefined && c2.reason).toBe("cgroup v1 controller 'cpu' not mounted");

    const none = host({ mountinfo: line(31, root, 'tmpfs', 'rw') });
    expect(none.mode).toBe('none');
    const c3 = chooseHierarchy(none);
    expect(c3.version === undefined && c3.reason).toMatch(/no cgroup filesystem is mounted/);
    // openCgroups reports the same reason with the host's description, and no backend
    const opened = openCgroups({ parent: 'bulwark-test', host: none });
    expect(opened.cgroups).toBeUndefined();
    expect(opened.capability).toEqual({
      available: false,
      reason: c3.version === undefined ? c3.reason : '',
      mode: 'none',
      controllers: { v1: [], v2: [] },
      psi: false,
    });
  });

  it('an unreadable mountinfo is mode none rather than an exception', () => {
    const h = detectCgroupHost({
      mountinfo: path.join(dir, 'absent'),
      procPressure: path.join(dir, 'absent'),
    });
    expect(h).toEqual({ mode: 'none', v1: {}, v2Controllers: [], psi: false });
  });

  it("this machine's own mountinfo parses and yields a mode", () => {
    const h = detectCgroupHost();
    expect(['v1', 'v2', 'hybrid', 'none']).toContain(h.mode);
    if (h.mode === 'v2' || h.mode === 'hybrid') expect(h.v2Root).toBeTruthy();
  });
});
