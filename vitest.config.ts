import { defineConfig } from 'vitest/config';

// Integration tests start real servers (PostgreSQL, HAProxy, processes in
// network namespaces); on a 2-core machine they must not run concurrently
// with each other, so files run one at a time and get generous timeouts.
// The global setup gives the run its own TMPDIR and fails the run when the
// tests leave processes, namespaces, veths or cgroups behind.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts', 'web/src/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['./test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
