/**
 * Node flags for a process that hosts the control plane (`bulwark server`,
 * `npm start`): bin/bulwark and package.json pass exactly these (a test
 * holds them together), and bench/dataplane runs its gateways' receivers
 * with them.
 *
 * --min-semi-space-size=16: the request-log path allocates ~0.7 KB per
 * request (a latin1 read, one slice per line, the parsed record). With the
 * default young generation, which V8 leaves at 1 MB while few objects
 * survive, that is ~27 scavenges a second at 36k requests/s, each stopping
 * the process for ~0.2 ms at a moment slicing cannot choose; with 16 MB,
 * ~3 a second and a fifth of the GC time (bench/dataplane/receiver.ts with
 * --trace-gc). Not settable at run time (v8.setFlagsFromString is too late)
 * nor through NODE_OPTIONS, which refuses it.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16'];

/** The SERVER_NODE_FLAGS this process was not started with (`execArgv`: process.execArgv). */
export function missingServerNodeFlags(execArgv: readonly string[]): string[] {
  return SERVER_NODE_FLAGS.filter((f) => !execArgv.includes(f));
}
