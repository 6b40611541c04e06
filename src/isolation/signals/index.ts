/** Public surface of the per-instance signal stream. */
export type * from './types.ts';
export { NO_ANSWER_OUTCOMES, SERVER_FAULT_OUTCOMES } from './types.ts';
export { classifyTermination, fromRequestLog } from './request.ts';
export { LogLineAssembler, isContinuationLine } from './log-assembler.ts';
export type { AssembledLog, LogLineAssemblerOptions } from './log-assembler.ts';
export { InstanceWindow, compileWindowOptions } from './window.ts';
export type { CompiledWindowOptions, InstanceWindowOptions, RequestSample } from './window.ts';
