import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { extractText, formatOf } from '../src/extract.ts'
import { minimalPdf } from './helpers/pdf.ts'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('extractText', () => {
  it('keeps plain text and Markdown as they are', async () => {
    assert.deepEqual(await extractText('a.md', bytes('# Title\n\nSome *text*.')), { format: 'markdown', text: '# Title\n\nSome *text*.', metadata: {} })
    assert.equal((await extractText('notes', bytes('just words'))).format, 'text')
  })

  it('takes the text of HTML without scripts, styles or markup, and its title', async () => {
    const out = await extractText('page.html', bytes('<html><head><title>The Page</title><style>p{}</style></head><body><p>First &amp; best</p><script>var x</script><div>Second</div></body></html>'))
    assert.equal(out.text, 'First & best\nSecond')
    assert.deepEqual(out.metadata, { title: 'The Page' })
  })

  it('gives JSON leaves as path: value lines, and CSV rows under their header', async () => {
    assert.equal((await extractText('x.json', bytes('{"a": {"b": "deep"}, "list": [1, "two"]}'))).text, 'a.b: deep\nlist[0]: 1\nlist[1]: two')
    assert.equal((await extractText('t.csv', bytes('name,quote\nAnne,"Hello, ""you"""\nBen,bye\n'))).text, 'name: Anne, quote: Hello, "you"\nname: Ben, quote: bye')
  })

  it('reads the text of a PDF', async () => {
    const out = await extractText('doc.pdf', minimalPdf(['Hello PDF world', 'second line']))
    assert.equal(out.format, 'pdf')
    assert.match(out.text, /Hello PDF world\nsecond line/)
    assert.equal(out.metadata.pages, 1)
  })

  it('refuses binary data and broken documents with UnsupportedDocumentError', async () => {
    await assert.rejects(extractText('img.bin', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2])), { name: 'UnsupportedDocumentError' })
    await assert.rejects(extractText('bad.pdf', bytes('%PDF-1.4 nothing else')), { name: 'UnsupportedDocumentError' })
    await assert.rejects(extractText('bad.json', bytes('{"a":')), { name: 'UnsupportedDocumentError' })
  })

  it('tells formats by their first bytes when the name says nothing', () => {
    assert.equal(formatOf('x', bytes('%PDF-1.7')), 'pdf')
    assert.equal(formatOf('x', bytes('<!DOCTYPE html><p>')), 'html')
    assert.equal(formatOf('x', bytes('{"a": 1}')), 'json')
    assert.equal(formatOf('x', new Uint8Array([0xff, 0xfe, 0])), undefined)
  })
})
