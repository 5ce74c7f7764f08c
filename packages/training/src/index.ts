/**
 * Data-parallel training across the cluster. A job goes into the Raft job
 * table; its coordinator splits every global batch over the workers, sums
 * their gradients over libp2p (/node-daemon/training/4.0.0) and sends the
 * mean back, so that every replica applies the same update. External
 * worker processes take ranks too, through the node they connect to.
 * Datasets, checkpoints and trained models are content, named by CID.
 */
export { createTraining, TrainingService } from './service.ts'
export type { DatasetParams, DatasetRecord, ModelStore, NodeRequirements, TrainingComponents, TrainingEvents, TrainingInit, TrainingRequest } from './service.ts'
export type { StepMetrics } from './coordinator.ts'
export { trainingSpec, STRATEGIES, SPEC_DEFAULTS } from './spec.ts'
export type { TrainingSpec } from './spec.ts'
export { architectureOf } from './architecture.ts'
export type { Architecture } from './architecture.ts'
export { Batches, split, stepsPerEpoch, totalSteps } from './batches.ts'
export { Replica } from './replica.ts'
export { TRAINING_PROTOCOL, StepRequest, StepResponse } from './protocol.ts'
export { StepWorker } from './worker.ts'
export type { StepWorkerComponents, StepWorkerInit } from './worker.ts'
export type { ExternalWorker, ExternalWorkerView, TaskAssignment, WorkerNotice } from './external.ts'
export { parseDataset, describeDataset, encodeTextDataset, encodeTensorDataset } from './dataset.ts'
export type { Dataset, DatasetInfo, TextDataset, TensorDataset } from './dataset.ts'
export { encodeSafetensors, decodeSafetensors } from './safetensors.ts'
export { DataLoaders, LOADER_LIMITS } from './loader.ts'
export type { Batch, LoaderOptions, LoaderStatus } from './loader.ts'
export { RECORD_FORMATS } from './records.ts'
export type { RecordFormat } from './records.ts'
export * from './errors.ts'
