import { statfs } from 'node:fs/promises'
import { availableParallelism, freemem, networkInterfaces, totalmem } from 'node:os'
import type { VersionInfo } from './version.ts'

/**
 * Kubo's diag/sys, with what Node can tell: no figure Go's runtime gives that
 * Node has no counterpart of (goroutines, GOMAXPROCS, swap), and no path of the
 * host (Kubo's environment section lists GOPATH and IPFS_PATH).
 */
export interface SystemDiagnostics {
  runtime: { os: string, arch: string, version: string, numcpu: number }
  /** The filesystem of the repo: its type as statfs numbers it, and bytes. */
  diskinfo: { fstype: string, total_space: number, free_space: number }
  /** Bytes of the machine's memory in use (Kubo's `virt`), and of this process's resident set. */
  memory: { virt: number, rss: number }
  net: { interface_addresses: string[], online: boolean }
  ipfs_version: string
  ipfs_commit: string
}

/** The machine's interface addresses as multiaddrs, as Kubo lists them. */
function interfaceAddresses (): string[] {
  return Object.values(networkInterfaces()).flatMap(list => list ?? []).map(a => a.family === 'IPv4' ? `/ip4/${a.address}` : `/ip6/${a.address.split('%')[0]}`)
}

export async function systemDiagnostics (repo: string, version: VersionInfo, online: boolean): Promise<SystemDiagnostics> {
  const disk = await statfs(repo)
  return {
    runtime: { os: process.platform, arch: process.arch, version: process.version, numcpu: availableParallelism() },
    diskinfo: { fstype: `0x${disk.type.toString(16)}`, total_space: disk.blocks * disk.bsize, free_space: disk.bavail * disk.bsize },
    memory: { virt: totalmem() - freemem(), rss: process.memoryUsage.rss() },
    net: { interface_addresses: interfaceAddresses(), online },
    ipfs_version: version.version,
    ipfs_commit: version.commit
  }
}
