/**
 * Rebuilds the corpus text files from Debian's r-cran-janeaustenr package
 * (see README.md for the commands). The package stores each novel as an R
 * character vector, one element per line of the Project Gutenberg text, in
 * R's lazy-load database `data/Rdata.rdb`: a run of records, each a 4-byte
 * big-endian length and a zlib stream holding an XDR serialization.
 *
 * Usage: node packages/models/corpus/make-corpus.ts <path to Rdata.rdb>
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { inflateSync } from 'node:zlib'

// The three novels kept, by the title on their first line, so the corpus stays under ~2 MB.
const NOVELS = new Map([
  ['PRIDE AND PREJUDICE', 'pride-and-prejudice.txt'],
  ['SENSE AND SENSIBILITY', 'sense-and-sensibility.txt'],
  ['Persuasion', 'persuasion.txt']
])

const STRSXP = 16

function readCharacterVectors (rdb: Buffer): string[][] {
  const vectors: string[][] = []
  let offset = 0
  while (offset < rdb.length) {
    // bytesWritten is the engine's count of compressed bytes consumed, which finds the next record.
    const { buffer, engine } = inflateSync(rdb.subarray(offset + 4), { info: true }) as unknown as { buffer: Buffer, engine: { bytesWritten: number } }
    offset += 4 + engine.bytesWritten
    vectors.push(parseStrsxp(buffer))
  }
  return vectors
}

function parseStrsxp (data: Buffer): string[] {
  if (data.toString('latin1', 0, 2) !== 'X\n' || data.readInt32BE(2) !== 3) throw new Error('expected an XDR serialization, version 3')
  // version 3 headers carry the native encoding's name after the three version ints
  let p = 14
  p += 4 + data.readInt32BE(p)
  if ((data.readInt32BE(p) & 0xff) !== STRSXP) throw new Error('expected a character vector')
  const length = data.readInt32BE(p + 4)
  p += 8
  const lines: string[] = []
  for (let i = 0; i < length; i++) {
    const size = data.readInt32BE(p + 4) // after the CHARSXP flags; -1 is NA
    p += 8
    lines.push(size < 0 ? '' : data.toString('utf8', p, p + size))
    p += Math.max(size, 0)
  }
  return lines
}

/**
 * Joins hard-wrapped lines into one line per paragraph, with single spaces
 * between sentences, and drops editorial notes and italic underscores.
 */
function toProse (lines: string[]): string {
  const paragraphs: string[] = []
  let current: string[] = []
  for (const line of [...lines, '']) {
    const trimmed = line.trim()
    if (trimmed !== '') {
      current.push(trimmed)
      continue
    }
    const paragraph = current.join(' ').replaceAll('_', '').replace(/ {2,}/g, ' ')
    current = []
    if (paragraph === '' || (paragraph.startsWith('[') && paragraph.endsWith(']'))) continue
    paragraphs.push(paragraph)
  }
  return paragraphs.join('\n\n') + '\n'
}

const rdbPath = process.argv[2]
if (rdbPath === undefined) throw new Error('usage: make-corpus.ts <path to janeaustenr/data/Rdata.rdb>')
for (const lines of readCharacterVectors(readFileSync(rdbPath))) {
  const file = NOVELS.get(lines[0])
  if (file === undefined) continue
  const text = toProse(lines)
  writeFileSync(new URL(file, import.meta.url), text)
  console.log(`${file}: ${Buffer.byteLength(text)} bytes`)
}
