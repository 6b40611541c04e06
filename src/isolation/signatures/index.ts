/** Public surface of the fault-signature library and engine. */
export type * from './types.ts';
export { CONDITION_KINDS } from './types.ts';
export { BUILTIN_RULES } from './builtins.ts';
export { RULE_NAME_PATTERN, RuleValidationError, resolveRules, validateRules } from './rules.ts';
export { conditionSchema, signatureRuleSchema, signaturesSchema } from './schema.ts';
export { SignatureEngine } from './engine.ts';
export type { SignatureEngineOptions, SignatureEngineStatus } from './engine.ts';
