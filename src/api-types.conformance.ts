/**
 * The console's API types (web/src/api/types.ts) are written out so the
 * browser bundle does not import server modules; this file keeps them from
 * drifting: each server type must still be assignable to the console's view
 * of it. The check is the type checker's (`npm run typecheck` fails on
 * drift): there is no test body to run, so nothing here reports "passed"
 * at run time. The last line is the control: a server type that lacks a
 * field the console reads must not compile, or the checks above prove
 * nothing.
 */
import type * as Web from '../web/src/api/types.ts';
import type { ActionFeedItem } from './model/actions.ts';
import type { Incident } from './model/incidents.ts';
import type { AppResource, Condition } from './model/types.ts';
import type { ErrorDetail } from './controlplane/errors.ts';
import type { Topology, TopologyEdge, TopologyNode } from './observability/topology/types.ts';
import type { InstanceStatus } from './runtime/driver.ts';
import type { ChangeEvent } from './store/store.ts';

/** Compiles only when the server type `S` is assignable to the console's `W` (plain TypeScript assignability). */
type Conforms<S extends W, W> = [S, W];

export type ConsoleApiConformance = [
  Conforms<TopologyNode, Web.TopologyNode>,
  Conforms<TopologyEdge, Web.TopologyEdge>,
  Conforms<Topology, Web.Topology>,
  Conforms<InstanceStatus, Web.Instance>,
  Conforms<Incident, Web.Incident>,
  Conforms<Condition, Web.Condition>,
  Conforms<ChangeEvent, Web.ChangeEvent>,
  Conforms<ActionFeedItem, Web.ActionFeedItem>,
  Conforms<AppResource, Web.AppResource>,
  Conforms<ErrorDetail, Web.ErrorDetail>,
];

// @ts-expect-error -- the control: an instance without the `ready` the console shows is drift.
export type DriftIsCaught = Conforms<Omit<InstanceStatus, 'ready'>, Web.Instance>;
