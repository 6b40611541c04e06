export { collectEvidence, type CollectOptions } from './collect.ts';
export {
  packBundle,
  pruneBundles,
  readManifest,
  type PruneResult,
  type RetentionLimits,
} from './retention.ts';
export type {
  CgroupStats,
  EvidenceBundle,
  EvidencePart,
  PartName,
  PartStatus,
  ProcessStats,
} from './types.ts';
