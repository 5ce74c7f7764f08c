/**
 * The permissions a route may need, coarse enough to grant by hand, and
 * document 000's short names as aliases of them.
 */

export const PERMISSIONS = [
  'content:read', 'content:write', 'pins', 'names', 'swarm',
  'cluster:read', 'cluster:admin', 'models:read', 'models:write',
  'inference', 'training', 'tasks', 'auth:admin'
] as const

export type Permission = typeof PERMISSIONS[number]

/** What a route needs: a permission, or `public` for what anyone may ask (health, versions, the login itself). */
export type RoutePermission = Permission | 'public'

/** Document 000's names: `cat`, `ls` and `get` read content; `*` is everything. */
const ALIASES: Record<string, readonly Permission[]> = {
  cat: ['content:read'],
  ls: ['content:read'],
  get: ['content:read'],
  '*': PERMISSIONS
}

/** The permissions a credential's list grants, aliases expanded; an unknown name is refused so that a typo grants nothing silently. */
export function expandPermissions (names: readonly string[]): Set<Permission> | string {
  const out = new Set<Permission>()
  for (const name of names) {
    const granted = ALIASES[name] ?? ((PERMISSIONS as readonly string[]).includes(name) ? [name as Permission] : undefined)
    if (granted == null) return name
    for (const p of granted) out.add(p)
  }
  return out
}

export function isPermission (name: string): name is Permission {
  return (PERMISSIONS as readonly string[]).includes(name)
}
