/**
 * The composition root of a node: settings (flags, env, YAML), the repo on
 * disk (identity, blocks, datastore), and the assembly of content and swarm
 * into the `Node` that the HTTP API adapts. Nothing above this package builds
 * services; nothing below it knows about config files.
 */
export { createNode, isLoopback } from './node.ts'
export type { Node, DaemonNode, NodeComponents, RepoStat } from './node.ts'
export { loadConfig, defaults, defaultRepo, merge, checkConfig, parsePort, parseSecret, parseTrustedPeers, CONFIG_FILE, OPEN_SWARM } from './config.ts'
export type { Config, ClusterConfig, ConfigLayer, LoadConfigOptions } from './config.ts'
export { initRepo, readApiAddress, repoBlockBytes, writeDefaultConfig, formatSwarmKey, parseSwarmKey, readSwarmKey, REPO_VERSION, SWARM_KEY_FILE } from './repo.ts'
export type { InitRepoOptions, InitRepoResult } from './repo.ts'
export { createLogger } from './logger.ts'
export type { Logger } from './logger.ts'
export { versionInfo } from './version.ts'
export type { VersionInfo } from './version.ts'
export * from './errors.ts'
