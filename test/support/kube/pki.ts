/**
 * Per-cluster PKI for the Kubernetes test harness: a CA, the apiserver's
 * serving certificate (127.0.0.1 / localhost plus the in-cluster names, so a
 * client that checks hostnames accepts it) and the service-account signing
 * key pair. X.509 needs a certificate builder node:crypto lacks, so the
 * certificates come from the openssl CLI; the RSA key pair from node:crypto.
 */
import { execFile } from 'node:child_process';
import { generateKeyPair } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface ClusterPki {
  caCertPath: string;
  caCertPem: string;
  serverCertPath: string;
  serverKeyPath: string;
  /** Private key the apiserver signs service-account tokens with (and the token controller). */
  saKeyPath: string;
  /** Public half, verified by the apiserver. */
  saPubPath: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execFileP('openssl', args, { cwd, timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed in ${cwd}: ${e.stderr ?? e.message}`);
  }
}

/** Write the PKI for `clusterName` into `dir`; `serviceIp` is the first IP of the service range. */
export async function createClusterPki(
  dir: string,
  clusterName: string,
  serviceIp: string,
): Promise<ClusterPki> {
  const p = (f: string): string => path.join(dir, f);
  // EC P-256: key generation is instant, unlike RSA, which matters with three clusters on two cores.
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '3650',
      '-subj',
      `/CN=bulwark-test-ca-${clusterName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ],
    dir,
  );
  await openssl(
    ['req', ...ec, '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver'],
    dir,
  );
  const sans = [
    'IP:127.0.0.1',
    `IP:${serviceIp}`,
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
  ];
  await fs.writeFile(
    p('apiserver.ext'),
    [
      `subjectAltName=${sans.join(',')}`,
      'extendedKeyUsage=serverAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'basicConstraints=critical,CA:FALSE',
      '',
    ].join('\n'),
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'apiserver.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '365',
      '-extfile',
      'apiserver.ext',
      '-out',
      'apiserver.crt',
    ],
    dir,
  );

  // Service-account tokens: RS256 is what every Kubernetes client expects to verify.
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  await fs.writeFile(p('sa.key'), privateKey, { mode: 0o600 });
  await fs.writeFile(p('sa.pub'), publicKey);

  return {
    caCertPath: p('ca.crt'),
    caCertPem: await fs.readFile(p('ca.crt'), 'utf8'),
    serverCertPath: p('apiserver.crt'),
    serverKeyPath: p('apiserver.key'),
    saKeyPath: p('sa.key'),
    saPubPath: p('sa.pub'),
  };
}

/**
 * A serving certificate for `names` only (no IP), signed by a CA of its own, for
 * kube-apiserver's --tls-sni-cert-key: a client that sends one of the names as SNI (a
 * kubeconfig's tls-server-name) gets this certificate, any other client the default one.
 * Trusting only this CA therefore works only when the client sends the name and checks the
 * certificate against it, not against the address it dialled.
 */
export async function createSniCert(
  dir: string,
  names: string[],
): Promise<{ caCertPem: string; certPath: string; keyPath: string }> {
  const sub = path.join(dir, 'sni');
  await fs.mkdir(sub, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '3650',
      '-subj',
      '/CN=bulwark-test-sni-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ],
    sub,
  );
  await openssl(['req', ...ec, '-keyout', 'sni.key', '-out', 'sni.csr', '-subj', `/CN=${names[0]}`], sub);
  await fs.writeFile(
    path.join(sub, 'sni.ext'),
    [
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
      'extendedKeyUsage=serverAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'basicConstraints=critical,CA:FALSE',
      '',
    ].join('\n'),
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'sni.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '365',
      '-extfile',
      'sni.ext',
      '-out',
      'sni.crt',
    ],
    sub,
  );
  return {
    caCertPem: await fs.readFile(path.join(sub, 'ca.crt'), 'utf8'),
    certPath: path.join(sub, 'sni.crt'),
    keyPath: path.join(sub, 'sni.key'),
  };
}
