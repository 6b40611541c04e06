import { describe, expect, it } from 'vitest';
import { inspectPortSetting } from './exposure.ts';

describe('inspectPortSetting', () => {
  const node = (...a: string[]) => ['/usr/bin/node', ...a];
  it('reads --inspect-port and --debug-port in both spellings; the last one wins', () => {
    expect(inspectPortSetting(node('--inspect-port=0', 'app.js'), '')).toBe('0');
    expect(inspectPortSetting(node('--inspect-port', '127.0.0.1:0', 'app.js'), '')).toBe('127.0.0.1:0');
    expect(inspectPortSetting(node('--debug-port=0', '--inspect-port=9230', 'app.js'), '')).toBe('9230');
    expect(inspectPortSetting(node('app.js'), '')).toBeUndefined();
  });
  it('takes NODE_OPTIONS, overridden by the command line', () => {
    expect(inspectPortSetting(node('app.js'), '--max-old-space-size=100 --inspect-port=0')).toBe('0');
    expect(inspectPortSetting(node('--inspect-port=9230', 'app.js'), '--inspect-port=0')).toBe('9230');
  });
  it("ignores the application's own arguments and option values", () => {
    expect(inspectPortSetting(node('app.js', '--inspect-port=0'), '')).toBeUndefined();
    expect(inspectPortSetting(node('-r', 'x.js', 'app.js', '--inspect-port=0'), '')).toBeUndefined();
    // Node keeps parsing its options after -e's code (checked with node 24).
    expect(inspectPortSetting(node('-e', 'x', '--inspect-port=0', 'a', '--inspect-port=5'), '')).toBe('0');
    expect(inspectPortSetting(node('--', '--inspect-port=0'), '')).toBeUndefined();
  });
});
