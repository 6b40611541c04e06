/**
 * What a node agent on another machine (a Kubernetes node, another host of a
 * site) sends the control plane: one report per interval with its raw flows
 * (addresses and ports, not yet attributed) and its own status. The control
 * plane attributes the flows with the site's inventory itself, so an agent
 * cannot name instances that do not exist, and validates every field: a bad
 * report is refused whole with the field and the fix, never half-ingested.
 *
 *   POST /api/v1/observability/agents/reports   body: AgentReport
 *   GET  /api/v1/observability/agents/inventory?site=<site>   -> Inventory
 */
import type { AgentState, AgentStatus } from './node-agent.ts';
import type { FlowSample } from './flows.ts';

/** A flow as the node saw it: counters plus the connections established at the end of the interval. */
export interface ReportedFlow extends Omit<FlowSample, 'rttUs'> {
  established: number;
  /** JSON has no undefined: absent (or null) without samples. */
  rttUs?: number | null | undefined;
}

export interface AgentReport {
  site: string;
  /** The reporting node's name (Kubernetes node name or host name). */
  node: string;
  status: Pick<AgentStatus, 'state' | 'reason' | 'intervals' | 'restarts' | 'probes' | 'attachMs'>;
  /** Absent while the agent is starting or cannot run: the report then only carries its status. */
  interval?: { at: string; intervalMs: number; flows: ReportedFlow[] };
}

export interface ReportIssue {
  path: string;
  message: string;
  fix: string;
}

export class AgentReportError extends Error {
  readonly issues: ReportIssue[];
  constructor(issues: ReportIssue[]) {
    super(`invalid agent report: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.issues = issues;
  }
}

export const MAX_REPORT_FLOWS = 20_000;
/** Site and node names in reports (and on the agent's command line): DNS-style, at most 253. */
export const AGENT_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const STATES: readonly AgentState[] = ['stopped', 'starting', 'running', 'unavailable', 'failed'];
const COUNTERS = [
  'opened',
  'accepted',
  'closedClient',
  'closedServer',
  'lifetimeMsSum',
  'failed',
  'bytesToServer',
  'bytesToClient',
  'retransmits',
  'resets',
  'established',
] as const;

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Check a report from the wire; returns it typed, or throws AgentReportError listing every problem (up to 20). */
export function validateAgentReport(body: unknown): AgentReport {
  const issues: ReportIssue[] = [];
  const bad = (path: string, message: string, fix: string): void => {
    if (issues.length < 20) issues.push({ path, message, fix });
  };
  if (!isObj(body))
    throw new AgentReportError([
      { path: 'body', message: 'must be a JSON object', fix: 'send an AgentReport' },
    ]);
  const known = new Set(['site', 'node', 'status', 'interval']);
  for (const k of Object.keys(body)) if (!known.has(k)) bad(k, 'unknown field', 'remove it');
  if (typeof body.site !== 'string' || !AGENT_NAME.test(body.site))
    bad(
      'site',
      'must be a site name (lowercase letters, digits, dots, dashes)',
      'pass --site <name> to the agent',
    );
  if (typeof body.node !== 'string' || !AGENT_NAME.test(body.node))
    bad(
      'node',
      'must be a node name (lowercase letters, digits, dots, dashes; at most 253)',
      'pass --node <name>',
    );
  const st = body.status;
  if (!isObj(st)) bad('status', 'must be an object', 'send the agent status');
  else {
    if (!STATES.includes(st.state as AgentState))
      bad('status.state', `must be one of ${STATES.join(', ')}`, 'send the agent state');
    if (st.reason !== undefined && (typeof st.reason !== 'string' || st.reason.length > 2000))
      bad('status.reason', 'must be a string of at most 2000 characters', 'shorten it');
    for (const k of ['intervals', 'restarts'] as const)
      if (!isCount(st[k])) bad(`status.${k}`, 'must be a non-negative integer', 'send the counter');
    for (const k of ['probes', 'attachMs'] as const)
      if (st[k] !== undefined && !isCount(st[k]))
        bad(`status.${k}`, 'must be a non-negative integer', 'send the number or leave it out');
  }
  const iv = body.interval;
  if (iv !== undefined) {
    if (!isObj(iv)) bad('interval', 'must be an object', 'send { at, intervalMs, flows }');
    else {
      if (typeof iv.at !== 'string' || Number.isNaN(Date.parse(iv.at)))
        bad('interval.at', 'must be an ISO 8601 time', 'send new Date().toISOString()');
      if (
        !Number.isInteger(iv.intervalMs) ||
        (iv.intervalMs as number) < 100 ||
        (iv.intervalMs as number) > 60_000
      )
        bad('interval.intervalMs', 'must be an integer from 100 to 60000', 'send the agent interval in ms');
      if (!Array.isArray(iv.flows)) bad('interval.flows', 'must be an array', 'send [] when there are none');
      else if (iv.flows.length > MAX_REPORT_FLOWS)
        bad(
          'interval.flows',
          `at most ${MAX_REPORT_FLOWS} flows per report`,
          'report more often (a shorter interval)',
        );
      else iv.flows.forEach((f: unknown, i: number) => checkFlow(f, `interval.flows[${i}]`, bad));
    }
  }
  if (issues.length > 0) throw new AgentReportError(issues);
  return body as unknown as AgentReport;
}

function checkFlow(f: unknown, at: string, bad: (path: string, message: string, fix: string) => void): void {
  if (!isObj(f)) return bad(at, 'must be an object', 'send a flow');
  for (const k of ['client', 'server'] as const)
    if (typeof f[k] !== 'string' || !IPV4.test(f[k]))
      bad(`${at}.${k}`, 'must be an IPv4 address', 'send the dotted quad');
  if (!Number.isInteger(f.port) || (f.port as number) < 1 || (f.port as number) > 65535)
    bad(`${at}.port`, 'must be an integer from 1 to 65535', 'send the server port');
  for (const k of COUNTERS)
    if (!isCount(f[k])) bad(`${at}.${k}`, 'must be a non-negative integer', 'send 0 when none');
  if (
    f.rttUs !== undefined &&
    f.rttUs !== null &&
    !(typeof f.rttUs === 'number' && f.rttUs >= 0 && Number.isFinite(f.rttUs))
  )
    bad(`${at}.rttUs`, 'must be a non-negative number or absent', 'leave it out without samples');
  if (!Array.isArray(f.clientPids) || f.clientPids.length > 64 || !f.clientPids.every(isCount))
    bad(`${at}.clientPids`, 'must be an array of at most 64 pids', 'send [] when unknown');
}
