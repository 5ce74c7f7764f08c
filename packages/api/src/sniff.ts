import { extname } from 'node:path'
import { fileTypeFromBuffer } from 'file-type'

/** How many leading bytes file-type needs to recognise every format it knows. */
export const SNIFF_BYTES = 4100

const BY_EXTENSION: Record<string, string> = {
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.csv': 'text/csv; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.xml': 'application/xml'
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function isText (bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false
  try {
    // A multi-byte character may be cut at the end of the sample.
    utf8.decode(bytes.subarray(0, Math.max(0, bytes.length - 3)))
    return true
  } catch {
    return false
  }
}

/** Content-Type from magic numbers, then the file name, then whether the bytes read as text. */
export async function sniffContentType (bytes: Uint8Array, name = ''): Promise<string> {
  const detected = await fileTypeFromBuffer(bytes)
  if (detected != null) return detected.mime
  const byName = BY_EXTENSION[extname(name).toLowerCase()]
  if (byName != null) return byName
  return isText(bytes) ? 'text/plain; charset=utf-8' : 'application/octet-stream'
}
