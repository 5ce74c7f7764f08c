import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CONSOLE_DIR, consoleDir, ConsoleNotBuiltError } from '../src/index.ts'

describe('the console bundle', () => {
  it('is found once built, and its absence says how to build it without naming a path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'console-'))
    try {
      assert.throws(() => consoleDir(dir), (err: Error) => err.name === ConsoleNotBuiltError.name && /npm run build -w @node-daemon\/console/.test(err.message) && !err.message.includes(dir))
      await writeFile(join(dir, 'index.html'), '<!doctype html>')
      assert.equal(consoleDir(dir), dir)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('was built by the install (the root prepare script)', () => {
    assert.equal(consoleDir(), CONSOLE_DIR)
  })
})
