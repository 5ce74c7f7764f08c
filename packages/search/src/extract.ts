/**
 * Text from the documents a collection takes in: plain text and Markdown as
 * they are, HTML without its markup (htmlparser2), JSON as `path: value`
 * lines, CSV as `column: value` lines, PDF through pdfjs-dist. The format
 * comes from the file name, else from the first bytes.
 */
import { Parser } from 'htmlparser2'
import { UnsupportedDocumentError } from './errors.ts'

export type DocumentFormat = 'text' | 'markdown' | 'html' | 'json' | 'csv' | 'pdf'

export interface Extracted {
  format: DocumentFormat
  /** For plain text and Markdown the file's bytes as they are, so that byte ranges of the text are byte ranges of the file. */
  text: string
  /** What the document says of itself: an HTML title, a PDF's page count. */
  metadata: Record<string, string | number>
}

const EXTENSIONS = new Map<string, DocumentFormat>([
  ...['txt', 'text', 'log', 'rst'].map(ext => [ext, 'text'] as const),
  ...['md', 'markdown', 'mdx'].map(ext => [ext, 'markdown'] as const),
  ...['html', 'htm', 'xhtml'].map(ext => [ext, 'html'] as const),
  ...['json', 'jsonl'].map(ext => [ext, 'json'] as const),
  ...['csv', 'tsv'].map(ext => [ext, 'csv'] as const),
  ['pdf', 'pdf']
])

/** The format of a file: by its extension, else by its first bytes; undefined for what is not text. */
export function formatOf (path: string, bytes: Uint8Array): DocumentFormat | undefined {
  const ext = /\.([A-Za-z0-9]+)$/.exec(path)?.[1]?.toLowerCase()
  const known = ext == null ? undefined : EXTENSIONS.get(ext)
  if (known != null) return known
  const head = Buffer.from(bytes.subarray(0, 512)).toString('latin1')
  if (head.startsWith('%PDF-')) return 'pdf'
  if (/^\s*(<!doctype html|<html)/i.test(head)) return 'html'
  if (!isUtf8Text(bytes)) return undefined
  if (/^\s*[[{]/.test(head)) {
    try {
      JSON.parse(Buffer.from(bytes).toString('utf8'))
      return 'json'
    } catch {}
  }
  return 'text'
}

/** Valid UTF-8 without NUL bytes: what a text file holds. */
function isUtf8Text (bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    return true
  } catch {
    return false
  }
}

export async function extractText (path: string, bytes: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<Extracted> {
  const format = formatOf(path, bytes)
  if (format == null) throw new UnsupportedDocumentError(`${path === '' ? 'the document' : path} is neither text nor a format with text (Markdown, HTML, JSON, CSV, PDF)`)
  const utf8 = (): string => Buffer.from(bytes).toString('utf8')
  switch (format) {
    case 'text':
    case 'markdown':
      return { format, text: utf8(), metadata: {} }
    case 'html':
      return { format, ...html(utf8()) }
    case 'json':
      return { format, text: json(utf8(), path), metadata: {} }
    case 'csv':
      return { format, text: csv(utf8(), path.toLowerCase().endsWith('.tsv') ? '\t' : ','), metadata: {} }
    case 'pdf':
      return { format, ...await pdf(bytes, path, options.signal) }
  }
}

const SKIPPED = new Set(['script', 'style', 'noscript', 'template', 'head'])
const BLOCKS = new Set(['p', 'div', 'br', 'li', 'ul', 'ol', 'tr', 'table', 'section', 'article', 'header', 'footer', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'pre', 'blockquote', 'title', 'hr', 'dd', 'dt'])

function html (source: string): { text: string, metadata: Record<string, string> } {
  const parts: string[] = []
  let skipping = 0
  let inTitle = false
  let title = ''
  const parser = new Parser({
    onopentagname (name) {
      if (name === 'title') inTitle = true
      if (SKIPPED.has(name)) skipping++
      if (BLOCKS.has(name)) parts.push('\n')
    },
    ontext (text) {
      if (inTitle) title += text
      if (skipping === 0) parts.push(text)
    },
    onclosetag (name) {
      if (name === 'title') inTitle = false
      if (SKIPPED.has(name)) skipping = Math.max(0, skipping - 1)
      if (BLOCKS.has(name)) parts.push('\n')
    }
  }, { decodeEntities: true })
  parser.write(source)
  parser.end()
  const text = parts.join('').replace(/[ \t]+/g, ' ').replace(/ ?\n[\s]*/g, '\n').trim()
  return { text, metadata: title.trim() === '' ? {} : { title: title.trim() } }
}

/** Each leaf of the JSON (or of each JSON Lines record) as `path: value`, so that both keys and values are searchable. */
function json (source: string, path: string): string {
  const lines: string[] = []
  const walk = (value: unknown, at: string, depth: number): void => {
    if (depth > 64) return
    if (Array.isArray(value)) value.forEach((v, i) => { walk(v, `${at}[${i}]`, depth + 1) })
    else if (value != null && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, at === '' ? k : `${at}.${k}`, depth + 1)
    else if (value != null) lines.push(at === '' ? String(value) : `${at}: ${String(value)}`)
  }
  const records = path.toLowerCase().endsWith('.jsonl') ? source.split('\n').filter(l => l.trim() !== '') : [source]
  try {
    for (const record of records) walk(JSON.parse(record), '', 0)
  } catch (err: any) {
    throw new UnsupportedDocumentError(`${path === '' ? 'the document' : path} is not valid JSON: ${err.message}`)
  }
  return lines.join('\n')
}

/** Rows as `column: value` lines under the header row's names; quoted fields may hold separators, quotes and newlines. */
function csv (source: string, separator: string): string {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]
    if (quoted) {
      if (ch === '"' && source[i + 1] === '"') { field += '"'; i++ } else if (ch === '"') quoted = false
      else field += ch
    } else if (ch === '"' && field === '') quoted = true
    else if (ch === separator) { row.push(field); field = '' } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && source[i + 1] === '\n') i++
      row.push(field)
      rows.push(row)
      row = []
      field = ''
    } else field += ch
  }
  if (field !== '' || row.length > 0) rows.push([...row, field])
  const [header, ...body] = rows.filter(r => r.some(f => f.trim() !== ''))
  if (header == null) return ''
  return body.map(r => r.map((v, i) => `${header[i] ?? `column ${i + 1}`}: ${v}`).join(', ')).join('\n')
}

async function pdf (bytes: Uint8Array, path: string, signal?: AbortSignal): Promise<{ text: string, metadata: Record<string, number> }> {
  const { getDocument } = await import('pdfjs-dist/legacy/build/pdf.mjs')
  // pdfjs takes the buffer over; a copy leaves the caller's bytes alone.
  const task = getDocument({ data: new Uint8Array(bytes), disableFontFace: true, isEvalSupported: false, useSystemFonts: false, verbosity: 0 })
  const abort = (): void => { void task.destroy() }
  signal?.addEventListener('abort', abort, { once: true })
  try {
    const doc = await task.promise
    const pages: string[] = []
    for (let n = 1; n <= doc.numPages; n++) {
      signal?.throwIfAborted()
      const content = await (await doc.getPage(n)).getTextContent()
      pages.push(content.items.map(item => 'str' in item ? item.str + (item.hasEOL ? '\n' : '') : '').join(''))
    }
    return { text: pages.join('\n\n'), metadata: { pages: doc.numPages } }
  } catch (err: any) {
    signal?.throwIfAborted()
    throw new UnsupportedDocumentError(`${path === '' ? 'the document' : path} is not a readable PDF: ${err.message}`)
  } finally {
    signal?.removeEventListener('abort', abort)
    await task.destroy()
  }
}
