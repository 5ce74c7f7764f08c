import { CID } from 'multiformats/cid'
import { InvalidCIDError } from './errors.ts'

export interface ContentPath {
  cid: CID
  /** Segments after the root CID, without empty ones. */
  rest: string[]
}

/** Parses a CID, `/ipfs/<cid>[/path]` or `<cid>/path`, as Kubo accepts them. */
export function parsePath (input: string): ContentPath {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidCIDError('a CID or /ipfs/ path is required')
  }
  let parts = input.split('/').filter(p => p.length > 0)
  if (input.startsWith('/')) {
    if (parts[0] !== 'ipfs') {
      throw new InvalidCIDError(`unsupported path ${JSON.stringify(input)}: only /ipfs/ paths can be read`)
    }
    parts = parts.slice(1)
  }
  const [root, ...rest] = parts
  return { cid: parseCID(root ?? ''), rest }
}

/**
 * Longer than any CID in use: a CID with a 128-byte identity digest (Kubo's
 * limit) is about 220 characters in base32. Base58 decoding takes time
 * quadratic in the length, so longer input is refused before it is decoded.
 */
export const MAX_CID_LENGTH = 512

export function parseCID (input: string): CID {
  if (input.length > MAX_CID_LENGTH) throw new InvalidCIDError(`invalid CID: ${input.length} characters, more than a CID has`)
  try {
    return CID.parse(input)
  } catch {
    throw new InvalidCIDError(`invalid CID ${JSON.stringify(input.slice(0, 100))}`)
  }
}

export function toExporterPath (path: ContentPath): string {
  return [path.cid.toString(), ...path.rest].join('/')
}
