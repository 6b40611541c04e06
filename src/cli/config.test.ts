/**
 * Where the CLI's TLS trust comes from: --ca-file / --tls-fingerprint, then
 * BULWARK_CA_FILE / BULWARK_TLS_FINGERPRINT, then caFile / tlsFingerprint in
 * the config file; the first layer that sets one decides, and every bad value
 * is refused naming where it came from.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  configCandidates,
  localDemoConfigFile,
  resolveConfig,
  userConfigFile,
  writeConfig,
} from './config.ts';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const FP = 'sha256:' + Array(32).fill('0A').join(':');
let dir: string;
let cfgFile: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-cli-config-'));
  fs.writeFileSync(path.join(dir, 'ca.pem'), PEM);
  fs.writeFileSync(path.join(dir, 'junk.pem'), 'junk');
  cfgFile = path.join(dir, 'cli.json');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.BULWARK_CA_FILE;
  delete process.env.BULWARK_TLS_FINGERPRINT;
});

describe('CLI TLS trust', () => {
  it('reads a pin from the config file (as bulwark server writes it, 0600) and a relative caFile beside it', () => {
    writeConfig(cfgFile, {
      server: 'https://127.0.0.1:7070',
      token: 'bwk_x',
      tlsFingerprint: FP.toLowerCase(),
    });
    expect((fs.statSync(cfgFile).mode & 0o777).toString(8)).toBe('600');
    expect(resolveConfig({ config: cfgFile }).trust).toEqual({ fingerprint: FP });
    writeConfig(cfgFile, { server: 'https://127.0.0.1:7070', caFile: 'ca.pem' });
    expect(resolveConfig({ config: cfgFile }).trust).toEqual({ ca: PEM });
  });

  it('lets flags win over the environment, and the environment over the file', () => {
    writeConfig(cfgFile, { server: 'https://127.0.0.1:7070', caFile: 'ca.pem' });
    process.env.BULWARK_TLS_FINGERPRINT = FP;
    expect(resolveConfig({ config: cfgFile }).trust).toEqual({ fingerprint: FP });
    expect(resolveConfig({ config: cfgFile, 'ca-file': path.join(dir, 'ca.pem') }).trust).toEqual({
      ca: PEM,
    });
  });

  it('refuses both in one layer, a bad pin and a file that is not PEM, naming the source', () => {
    expect(() => resolveConfig({ config: cfgFile, 'ca-file': 'x', 'tls-fingerprint': FP })).toThrow(
      /--ca-file and --tls-fingerprint are both set; give one/,
    );
    expect(() => resolveConfig({ config: cfgFile, 'tls-fingerprint': 'sha256:12' })).toThrow(
      /^--tls-fingerprint: 'sha256:12' is not a SHA-256 certificate fingerprint/,
    );
    process.env.BULWARK_CA_FILE = path.join(dir, 'junk.pem');
    expect(() => resolveConfig({ config: cfgFile })).toThrow(
      /^BULWARK_CA_FILE .*junk\.pem: not a PEM certificate/,
    );
    delete process.env.BULWARK_CA_FILE;
    writeConfig(cfgFile, { server: 'https://127.0.0.1:7070', caFile: 'missing.pem' });
    expect(() => resolveConfig({ config: cfgFile })).toThrow(
      /^caFile in .*cli\.json .*missing\.pem: cannot read it \(ENOENT\)/,
    );
  });
});

describe('where the CLI finds its config', () => {
  const saved = { xdg: process.env.XDG_CONFIG_HOME, cfg: process.env.BULWARK_CONFIG };
  afterEach(() => {
    if (saved.xdg === undefined) delete process.env.XDG_CONFIG_HOME;
    else process.env.XDG_CONFIG_HOME = saved.xdg;
    if (saved.cfg === undefined) delete process.env.BULWARK_CONFIG;
    else process.env.BULWARK_CONFIG = saved.cfg;
  });

  it("finds a checkout's .bulwark/cli.json from a subdirectory, like git finds .git", () => {
    delete process.env.BULWARK_CONFIG;
    const root = fs.mkdtempSync(path.join(dir, 'checkout-'));
    writeConfig(path.join(root, '.bulwark/cli.json'), { server: 'http://127.0.0.1:7071' });
    const deep = path.join(root, 'a/b/c');
    fs.mkdirSync(deep, { recursive: true });
    expect(configCandidates(undefined, deep)[0]).toBe(path.join(root, '.bulwark/cli.json'));
  });

  it('from any other directory: the saved user config, then the one npm start recorded, under XDG_CONFIG_HOME', () => {
    delete process.env.BULWARK_CONFIG;
    const xdg = fs.mkdtempSync(path.join(dir, 'xdg-'));
    process.env.XDG_CONFIG_HOME = xdg;
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-elsewhere-'));
    try {
      expect(configCandidates(undefined, elsewhere)).toEqual([
        path.join(xdg, 'bulwark/config.json'),
        path.join(xdg, 'bulwark/local.json'),
      ]);
      writeConfig(localDemoConfigFile(), { server: 'http://127.0.0.1:7072', token: 'bwk_local' });
      expect((fs.statSync(path.join(xdg, 'bulwark')).mode & 0o777).toString(8)).toBe('700');
      const prev = process.cwd();
      process.chdir(elsewhere);
      try {
        expect(resolveConfig({})).toMatchObject({ server: 'http://127.0.0.1:7072', token: 'bwk_local' });
        writeConfig(userConfigFile(), { server: 'http://127.0.0.1:7073' });
        expect(resolveConfig({}).server).toBe('http://127.0.0.1:7073');
      } finally {
        process.chdir(prev);
      }
      // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
      process.env.XDG_CONFIG_HOME = 'relative/dir';
      expect(userConfigFile()).toBe(path.join(os.homedir(), '.config/bulwark/config.json'));
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
