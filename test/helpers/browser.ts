/**
 * Debian's Chromium, headless, driven by playwright-core (which cannot
 * download a browser here), for the tests that need a real browser.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import type { Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

/** Why the browser tests skip, or false when Chromium is there. */
export const skipWithoutChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium)`

/** Launches Chromium with the flags it needs here; playwright gives it a fresh profile of its own, and removes it. */
export async function launchChromium (extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs]
  })
}

/**
 * Where a test's screenshots go: a folder under $NODE_DAEMON_SCREENSHOTS,
 * kept for a look afterwards, or else a temporary one that `done()` removes,
 * so that runs leave nothing behind.
 */
export interface ScreenshotFolder {
  dir: string
  done: () => Promise<void>
}

export async function screenshotFolder (name: string): Promise<ScreenshotFolder> {
  const keep = process.env.NODE_DAEMON_SCREENSHOTS
  if (keep != null && keep !== '') {
    const dir = join(keep, name)
    await mkdir(dir, { recursive: true })
    return { dir, done: async () => { console.log(`${name} screenshots: ${dir}`) } }
  }
  const dir = await mkdtemp(join(tmpdir(), `node-daemon-${name}-`))
  return { dir, done: async () => { await rm(dir, { recursive: true, force: true }) } }
}
