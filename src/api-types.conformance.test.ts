/**
 * The console's API types (web/src/api/types.ts) are written out so the
 * browser bundle does not import server modules; this file keeps them from
 * drifting: each server type must still be assignable to the console's view of
 * it. The checks are compile-time (`npm run typecheck` fails on drift); the
 * test body only makes vitest list them.
 */
import { describe, expect, it } from 'vitest';
import type * as Web from '../web/src/api/types.ts';
import type { ActionFeedItem } from './controlplane/actions/types.ts';
import type { Incident } from './isolation/incidents/types.ts';
import type { AppResource, Condition } from './model/types.ts';
import type { ErrorDetail } from './controlplane/errors.ts';
import type { Topology, TopologyEdge, TopologyNode } from './observability/topology/types.ts';
import type { InstanceStatus } from './runtime/driver.ts';
import type { ChangeEvent } from './store/store.ts';

/** Compiles only when the server type `_S` is assignable to the console's `W` (plain TypeScript assignability). */
const conforms = <_S extends W, W>(): boolean => true;

describe('console API types follow the server types', () => {
  it('topology, instances, incidents, apps, conditions, errors, change and action feeds', () => {
    expect(conforms<TopologyNode, Web.TopologyNode>()).toBe(true);
    expect(conforms<TopologyEdge, Web.TopologyEdge>()).toBe(true);
    expect(conforms<Topology, Web.Topology>()).toBe(true);
    expect(conforms<InstanceStatus, Web.Instance>()).toBe(true);
    expect(conforms<Incident, Web.Incident>()).toBe(true);
    expect(conforms<Condition, Web.Condition>()).toBe(true);
    expect(conforms<ChangeEvent, Web.ChangeEvent>()).toBe(true);
    expect(conforms<ActionFeedItem, Web.ActionFeedItem>()).toBe(true);
    expect(conforms<AppResource, Web.AppResource>()).toBe(true);
    expect(conforms<ErrorDetail, Web.ErrorDetail>()).toBe(true);
  });
});
