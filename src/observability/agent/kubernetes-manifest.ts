/**
 * The Kubernetes objects that run `bulwark agent` on every node of a
 * cluster: a Namespace, a Secret with an agent-scoped token (it may post
 * reports and read the site's inventory, nothing else; never an admin token),
 * and a DaemonSet. Over https the agents trust the control plane the way the
 * rendering CLI did: the pinned fingerprint as an environment variable, or the
 * CA certificate in the Secret, mounted as a file. The agent needs the node's view: `hostPID` (to find pods'
 * network namespaces in /proc), `hostNetwork` (the node's own sockets),
 * privileges for bpftrace (CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN: privileged),
 * and the kernel's tracefs and BTF mounted from the host. The node name comes
 * from the downward API, so each node reports as itself.
 *
 *   bulwark agent manifest --site dc2 --image registry/bulwark:tag --server https://cp:7070 \
 *     --tls-fingerprint sha256:... --create-agent-token | kubectl apply -f -
 */
import { stringify } from 'yaml';

export interface AgentManifestOptions {
  site: string;
  /** An image with Node.js 24, bpftrace, iproute2 (ss), util-linux (nsenter) and Bulwark. */
  image: string;
  /** The control plane URL as the nodes reach it. */
  server: string;
  /** An agent-scoped token for the Secret; without it the Secret is left for the operator to fill. */
  token?: string;
  /** `sha256:...` of the control plane's certificate: the agents pin it (BULWARK_TLS_FINGERPRINT). */
  tlsFingerprint?: string;
  /** PEM of the CA (or certificate) the agents trust for the control plane; goes in the Secret. */
  caPem?: string;
  namespace?: string;
  intervalMs?: number;
}

export function renderAgentManifest(o: AgentManifestOptions): string {
  const ns = o.namespace ?? 'bulwark-system';
  const name = `bulwark-agent-${o.site}`;
  const labels = {
    'app.kubernetes.io/name': 'bulwark-agent',
    'app.kubernetes.io/instance': name,
    'app.kubernetes.io/managed-by': 'bulwark',
    'bulwark.io/site': o.site,
  };
  const hostPath = (volume: string, path: string) => ({ name: volume, hostPath: { path } });
  const objects = [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { 'app.kubernetes.io/managed-by': 'bulwark' } },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: ns, labels },
      type: 'Opaque',
      stringData: {
        token: o.token ?? 'REPLACE-with-an-agent-token-from-bulwark-tokens-create',
        ...(o.caPem ? { 'ca.crt': o.caPem } : {}),
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name, namespace: ns, labels },
      spec: {
        selector: { matchLabels: { 'app.kubernetes.io/instance': name } },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%' } },
        template: {
          metadata: { labels },
          spec: {
            hostPID: true,
            hostNetwork: true,
            dnsPolicy: 'ClusterFirstWithHostNet',
            priorityClassName: 'system-node-critical',
            // Every node, control-plane and tainted ones included: the map must not have holes.
            tolerations: [{ operator: 'Exists' }],
            terminationGracePeriodSeconds: 10,
            containers: [
              {
                name: 'agent',
                image: o.image,
                command: ['bulwark', 'agent'],
                args: ['--site', o.site, '--interval-ms', String(o.intervalMs ?? 1000)],
                env: [
                  { name: 'BULWARK_SERVER', value: o.server },
                  { name: 'BULWARK_TOKEN', valueFrom: { secretKeyRef: { name, key: 'token' } } },
                  { name: 'BULWARK_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                  ...(o.tlsFingerprint ? [{ name: 'BULWARK_TLS_FINGERPRINT', value: o.tlsFingerprint }] : []),
                  ...(o.caPem ? [{ name: 'BULWARK_CA_FILE', value: '/etc/bulwark/ca.crt' }] : []),
                ],
                securityContext: { privileged: true },
                resources: {
                  requests: { cpu: '50m', memory: '128Mi' },
                  // bpftrace holds BTF and LLVM (~110 MiB resident after compiling its program).
                  limits: { cpu: '500m', memory: '384Mi' },
                },
                volumeMounts: [
                  { name: 'tracefs', mountPath: '/sys/kernel/tracing' },
                  { name: 'btf', mountPath: '/sys/kernel/btf', readOnly: true },
                  ...(o.caPem ? [{ name: 'ca', mountPath: '/etc/bulwark', readOnly: true }] : []),
                ],
              },
            ],
            volumes: [
              hostPath('tracefs', '/sys/kernel/tracing'),
              hostPath('btf', '/sys/kernel/btf'),
              ...(o.caPem
                ? [{ name: 'ca', secret: { secretName: name, items: [{ key: 'ca.crt', path: 'ca.crt' }] } }]
                : []),
            ],
          },
        },
      },
    },
  ];
  return objects.map((x) => stringify(x)).join('---\n');
}
