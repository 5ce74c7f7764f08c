import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { basename, join, relative } from 'node:path'
import { Readable } from 'node:stream'

export interface UploadEntry {
  /** Path inside the upload, with the top-level name first. */
  path: string
  /** Absolute path on disk; missing for directories. */
  file?: string
  size: number
}

/** Lists what `add` sends: the path itself, and with `recursive` everything under a directory. */
export async function listUpload (root: string, recursive: boolean): Promise<UploadEntry[]> {
  const info = await stat(root)
  const top = basename(root)
  if (info.isFile()) return [{ path: top, file: root, size: info.size }]
  if (!info.isDirectory()) throw new Error(`${root} is neither a file nor a directory`)
  if (!recursive) throw new Error(`${root} is a directory; use -r to add it`)
  const entries: UploadEntry[] = [{ path: top, size: 0 }]
  const walk = async (dir: string): Promise<void> => {
    const children = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))
    for (const child of children) {
      const abs = join(dir, child.name)
      const path = join(top, relative(root, abs))
      if (child.isDirectory()) {
        entries.push({ path, size: 0 })
        await walk(abs)
      } else if (child.isFile()) {
        entries.push({ path, file: abs, size: (await stat(abs)).size })
      }
    }
  }
  await walk(root)
  return entries
}

/** A body streamed from disk, of a length known before it is sent. */
export interface Upload {
  stream: Readable
  length: number
  /** Its content type, the multipart boundary included. */
  type: string
}

/**
 * A multipart body in Kubo's layout, streamed from disk: form fields first,
 * then one part per file or directory, paths URI-encoded in the filename.
 * `onBytes` sees file bytes as they are read, for a progress bar.
 */
export function multipartBody (entries: UploadEntry[], onBytes: (n: number) => void, fields: Record<string, string> = {}): Upload {
  const boundary = `node-daemon-${randomUUID()}`
  let first = true
  const open = (): string => {
    const prefix = first ? '' : '\r\n'
    first = false
    return `${prefix}--${boundary}\r\n`
  }
  const fieldParts = Object.entries(fields).map(([name, value]) => Buffer.from(`${open()}Content-Disposition: form-data; name="${name}"\r\n\r\n${value}`))
  const heads = entries.map(entry => {
    const type = entry.file == null ? 'application/x-directory' : 'application/octet-stream'
    return Buffer.from(`${open()}Content-Disposition: form-data; name="file"; filename="${encodeURIComponent(entry.path)}"\r\nContent-Type: ${type}\r\n\r\n`)
  })
  const end = Buffer.from(`\r\n--${boundary}--\r\n`)
  async function * parts (): AsyncGenerator<Uint8Array> {
    yield * fieldParts
    for (const [i, entry] of entries.entries()) {
      yield heads[i]
      if (entry.file == null) continue
      for await (const chunk of createReadStream(entry.file, { highWaterMark: 1_048_576 })) {
        onBytes(chunk.length)
        yield chunk
      }
    }
    yield end
  }
  const length = [...fieldParts, ...heads].reduce((sum, h) => sum + h.byteLength, 0) + entries.reduce((sum, e) => sum + (e.file == null ? 0 : e.size), 0) + end.byteLength
  return { stream: Readable.from(parts(), { objectMode: false }), length, type: `multipart/form-data; boundary=${boundary}` }
}
