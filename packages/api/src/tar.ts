import { BadRequestError } from './errors.ts'
import type { Content } from '@node-daemon/content'

const BLOCK = 512

/** Splits a path into ustar's prefix (155 bytes) and name (100 bytes) fields. */
function splitPath (path: string): [prefix: string, name: string] {
  if (Buffer.byteLength(path) <= 100) return ['', path]
  const cut = path.lastIndexOf('/', 155)
  if (cut > 0 && Buffer.byteLength(path.slice(0, cut)) <= 155 && Buffer.byteLength(path.slice(cut + 1)) <= 100) return [path.slice(0, cut), path.slice(cut + 1)]
  throw new BadRequestError(`${JSON.stringify(path)} is too long for a tar archive`)
}

function header (path: string, size: number, type: 'file' | 'directory'): Uint8Array {
  const block = Buffer.alloc(BLOCK)
  const [prefix, name] = splitPath(path)
  block.write(name, 0)
  block.write(type === 'directory' ? '0000755\0' : '0000644\0', 100)
  block.write('0000000\0', 108)
  block.write('0000000\0', 116)
  if (size < 8 ** 11) {
    block.write(`${size.toString(8).padStart(11, '0')}\0`, 124)
  } else {
    // Past 8 GiB, GNU tar's base-256 size: a marker bit, then the size big-endian.
    let rest = BigInt(size)
    for (let i = 135; i > 124; i--, rest >>= 8n) block[i] = Number(rest & 0xffn)
    block[124] = 0x80
  }
  block.write('00000000000\0', 136)
  block.write(type === 'directory' ? '5' : '0', 156)
  block.write('ustar\u000000', 257)
  block.write(prefix, 345)
  // The checksum is counted with its own field as spaces.
  block.fill(' ', 148, 156)
  const sum = block.reduce((total, byte) => total + byte, 0)
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
  return block
}

async function * entries (content: Pick<Content, 'ls' | 'cat'>, cid: string, dir: string, options: { signal?: AbortSignal }): AsyncGenerator<Uint8Array> {
  const listing = await content.ls(dir === '' ? cid : `${cid}/${dir}`, options)
  for (const entry of listing.entries) {
    const path = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.type === 'directory') {
      yield header(`${path}/`, 0, 'directory')
      yield * entries(content, cid, path, options)
      continue
    }
    yield header(path, entry.size, 'file')
    yield * content.cat(`${cid}/${path}`, options)
    const padding = (BLOCK - entry.size % BLOCK) % BLOCK
    if (padding > 0) yield new Uint8Array(padding)
  }
}

/**
 * A directory of content as a ustar archive, streamed: one header per entry,
 * then its bytes padded to 512, then two empty blocks. Paths are relative to
 * the directory, so the archive unpacks where the client chooses.
 */
export async function * tarDirectory (content: Pick<Content, 'ls' | 'cat'>, cid: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
  yield * entries(content, cid, '', options)
  yield new Uint8Array(2 * BLOCK)
}
