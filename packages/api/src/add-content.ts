/** Content given in a call rather than uploaded: document 000's `add` and `cluster_add`, and the stored framework documents. */
import { BadRequestError } from './errors.ts'
import type { AddOptions } from '@node-daemon/content'
import type { Node } from '@node-daemon/daemon'

/** Adds one file from a call's `content`, and answers its root (the wrapping directory when asked for one). */
export async function addContent (node: Node, input: { content: string, encoding?: 'utf8' | 'base64', name?: string, cid_version?: 0 | 1 }, options: AddOptions): Promise<{ cid: string, name: string, size: number }> {
  const bytes = Buffer.from(input.content, input.encoding === 'base64' ? 'base64' : 'utf8')
  let root: { cid: string, name: string, size: number } | undefined
  for await (const event of node.content.addAll([{ path: input.name, content: bytes }], { ...options, cidVersion: input.cid_version })) {
    if (event.type === 'entry') root = { cid: event.cid.toString(), name: event.name === '' ? event.cid.toString() : event.name, size: event.size }
  }
  if (root == null) throw new BadRequestError('nothing was added')
  return root
}
