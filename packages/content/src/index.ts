/**
 * IPFS content of a node, on Helia: UnixFS add/cat/ls with Kubo's CIDs for the
 * same bytes, raw blocks and IPLD DAGs, pins of Kubo's three kinds, garbage
 * collection of what nothing keeps, IPNS names with named keys, and gossipsub
 * topics. Everything the daemon stores is content addressed through this package.
 */
export { Content } from './content.ts'
export { AutoGc } from './auto-gc.ts'
export type { AutoGcComponents, AutoGcInit } from './auto-gc.ts'
export type { ContentEvents, ContentInit } from './content.ts'
export type { AddEvent, AddOptions } from './add.ts'
export type { BitswapLedger, BitswapStat, CountedBitswap } from './bitswap.ts'
export type { BlockPutOptions, DagPutOptions, ReadOptions } from './blocks.ts'
export type { BlockRmOptions, BlockRmResult, GcResult } from './gc.ts'
export type { MfsEntry, MfsStat, MfsType, MfsWriteOptions, MfsMkdirOptions } from './mfs.ts'
export type { CarImportEvent, CarImportOptions } from './car.ts'
export type { DagResolution } from './dag-resolve.ts'
export type { Ref, RefsOptions } from './refs.ts'
export { ChangeType } from './object.ts'
export type { DirectoryEntry, ObjectChange, ObjectPatchOptions } from './object.ts'
export type { PinEntry, PinFilter, PinLsOptions, PinType } from './pins.ts'
export type { SyncReadDatastore } from './pin-store.ts'
export type { CatOptions, FileStat, Listing, LsEntry, LinkType } from './read.ts'
export type { DhtRecords, GenerateKeyOptions, KeyEntry, PublishOptions, RenamedKey, ResolveOptions } from './names.ts'
export { checkKeyFormat, KEY_FORMATS } from './key-formats.ts'
export type { KeyFormat } from './key-formats.ts'
export type { PubsubMessage } from './pubsub.ts'
export { MAX_CID_LENGTH, parsePath, parseCID } from './paths.ts'
export * from './errors.ts'
