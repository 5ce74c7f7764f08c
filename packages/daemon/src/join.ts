import { readInvite } from '@node-daemon/cluster'
import { ConfigError } from './errors.ts'
import { SWARM_KEY_FILE } from './layout.ts'
import { formatSwarmKey, readSwarmKey, writeDefaultConfig } from './repo.ts'
import { OPEN_SWARM } from './settings.ts'
import type { Config } from './config.ts'

/** What `start --join` and `start --bootstrap` amount to: the key the swarm runs with and the peers it joins through. */
export interface JoinSettings {
  /** cluster.secret as the repo is opened with it (see `InitRepoOptions`). */
  secret?: string
  bootstrap: string[]
}

/**
 * The join token's key and members, with what the config names besides.
 * A start that could never join stops here, before the repo gets a key: bootstrap
 * peers given to a repo without a swarm.key, with neither a secret nor a join
 * token. That repo would make itself a random key that no cluster holds, and
 * its handshakes would all fail. (A swarm.key that `init` made is kept and
 * used, since it may be a copied one; a wrong one fails at the handshake,
 * loudly.)
 */
export async function joinSettings (config: Config): Promise<JoinSettings> {
  const configured = config.cluster.secret
  const token = config.cluster.joinToken
  if (token == null) {
    if (configured == null && config.swarm.bootstrap.length > 0 && await readSwarmKey(config.repo) == null) {
      throw new ConfigError('--bootstrap cannot join from a repo without the cluster\'s secret: pass --join <token>, made by `node-daemon cluster invite` on a member, ' +
        "or --secret <the cluster's key> (--secret off for an open swarm)")
    }
    return { secret: configured, bootstrap: config.swarm.bootstrap }
  }
  const invite = readInvite(token)
  const secret = invite.key ?? OPEN_SWARM
  if (configured != null && configured !== secret) {
    throw new ConfigError('the join token carries the cluster\'s key, and cluster.secret (--secret, NODE_DAEMON_CLUSTER_SECRET or config.yaml) names another: drop the secret')
  }
  // The token's key is written into a repo without one; a repo holding another (as `init` makes) would use that one on the next start without the token.
  const inRepo = await readSwarmKey(config.repo)
  if (inRepo != null && (invite.key == null || Buffer.compare(inRepo, formatSwarmKey(invite.key)) !== 0)) {
    throw new ConfigError(`the repo's ${SWARM_KEY_FILE} is not the key of the cluster the join token is for: join with a fresh repo (\`start --join\` creates it; no \`init\` needed), or remove that file`)
  }
  // An open swarm is remembered in config.yaml, as `init` does, or the next start would make a key.
  if (invite.key == null) await writeDefaultConfig(config.repo, { cluster: { secret: OPEN_SWARM } })
  return { secret, bootstrap: [...new Set([...config.swarm.bootstrap, ...invite.addrs])] }
}
