/**
 * Entry point Bulwark runs as `[ip netns exec <ns>] node inspector-helper.ts '<json>'`
 * so that the inspector is reached on the instance's own loopback, where
 * nothing outside its namespace can connect. Input: SessionOptions as JSON in
 * argv[2]. Output: one SessionResult JSON line on stdout; the CPU profile is
 * written straight to the file named in the options (the filesystem is shared,
 * only the network is the namespace's).
 */
import { runInspectorSession, type SessionOptions } from './inspector-session.ts';

const raw = process.argv[2];
if (!raw) {
  process.stderr.write('usage: node inspector-helper.ts \'{"port":9229,"durationMs":1000,...}\'\n');
  process.exit(2);
}
const result = await runInspectorSession(JSON.parse(raw) as SessionOptions);
process.stdout.write(`${JSON.stringify(result)}\n`);
