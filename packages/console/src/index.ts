/**
 * The web console: a Preact app (web/) that Vite builds into dist/, which the
 * API serves at / and /webui. This module tells the API where the built files
 * are.
 *
 * The bundle is built at install, not committed: the root package's `prepare`
 * script runs `vite build` here, and `npm ci` (with or without --omit=dev, so
 * in the Docker image too) runs `prepare`. Built files in git would go stale
 * with every change of web/ and bloat every diff; Vite and its plugins are
 * plain npm packages, so the build works offline from the registry. Vite is
 * therefore a dependency, not a devDependency.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The console was not built (an install with --ignore-scripts, or a checkout without `npm install`). */
export class ConsoleNotBuiltError extends Error {
  static name = 'ConsoleNotBuiltError'
  name = 'ConsoleNotBuiltError'
}

/** The directory of the built console: index.html, and its scripts and styles under assets/. */
export const CONSOLE_DIR = fileURLToPath(new URL('../dist/', import.meta.url))

/** The built console's directory (`dir`, default CONSOLE_DIR); throws ConsoleNotBuiltError, saying how to build it, when it has no index.html. */
export function consoleDir (dir = CONSOLE_DIR): string {
  if (!existsSync(join(dir, 'index.html'))) throw new ConsoleNotBuiltError('the web console is not built: run `npm run build -w @node-daemon/console` (npm install does it) and reload')
  return dir
}
