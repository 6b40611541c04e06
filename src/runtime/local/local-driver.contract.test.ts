/** The RuntimeDriver contract, run by LocalDriver unprivileged and (as root) privileged. */
import { runDriverContract } from '../driver.contract.ts';
import { LocalDriver } from './local-driver.ts';
import { MemoryInstanceRecords } from './records.ts';
import { APP, isRoot, localTestEnv } from './testdata/test-env.ts';

const env = localTestEnv({
  bridge: 'bwtest1',
  subnet: '10.239.1.0/24',
  gateway: '10.239.1.1',
  cgroupParent: 'bulwark-test-ct',
});
const fastBackoff = { initialMs: 300, maxMs: 5000, resetAfterMs: 60_000 };

runDriverContract({
  name: 'local (unprivileged)',
  site: 'test',
  newDriver: () =>
    LocalDriver.create({
      stateDir: env.newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
      backoff: fastBackoff,
    }),
  app: { command: [process.execPath, APP] },
  badApp: { command: ['no-such-binary-xyz'], badName: 'no-such-binary-xyz' },
});

if (isRoot) {
  runDriverContract({
    name: 'local (privileged: netns + cgroups)',
    site: 'test',
    newDriver: () =>
      LocalDriver.create({
        stateDir: env.newDir(),
        site: 'test',
        records: new MemoryInstanceRecords(),
        backoff: fastBackoff,
        ...env.privilegedOpts,
      }),
    app: { command: [process.execPath, APP] },
    badApp: { command: ['/opt/nowhere/no-such-binary'], badName: 'no-such-binary' },
  });
}
