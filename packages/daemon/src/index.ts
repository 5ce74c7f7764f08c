/**
 * The composition root of a node: settings (flags, env, YAML), the repo on
 * disk (identity, blocks, datastore), and the assembly of content and swarm
 * into the `Node` that the HTTP API adapts. Nothing above this package builds
 * services; nothing below it knows about config files.
 */
export { createNode, isLoopback } from './node.ts'
export type { Node, DaemonNode, NodeComponents, RepoStat } from './node.ts'
export { loadConfig, defaults, merge, checkConfig, parseTrustedPeers, CONFIG_FILE } from './config.ts'
export { defaultRepo, parsePort, parseSecret, OPEN_SWARM } from './settings.ts'
export type { Config, ClusterConfig, ConfigLayer, LoadConfigOptions } from './config.ts'
export { initRepo, repoBlockBytes, writeDefaultConfig, formatSwarmKey, parseSwarmKey, readSwarmKey } from './repo.ts'
export { readApiAddress, REPO_VERSION, SWARM_KEY_FILE } from './layout.ts'
export type { InitRepoOptions, InitRepoResult } from './repo.ts'
export { createLogger, DEFAULT_SUBSYSTEM, InvalidLogLevelError, logControlOf, UnknownSubsystemError } from './logger.ts'
export type { LogControl, Logger } from './logger.ts'
export type { SystemDiagnostics } from './diagnostics.ts'
export type { ProfileOptions, Profiles } from './profile.ts'
export { versionInfo } from './version.ts'
export type { VersionInfo } from './version.ts'
export * from './errors.ts'
