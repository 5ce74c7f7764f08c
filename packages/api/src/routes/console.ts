import fastifyStatic from '@fastify/static'
import { CONSOLE_DIR, consoleDir } from '@node-daemon/console'
import { Type } from 'typebox'
import type { Routes } from '../server.ts'

const tags = ['console']

/** Vite's output names: one flat directory of name-hash.ext files, so nothing with a slash or a `..`. */
/** Preact and uPlot set styles inline; the favicon is a data: URL; the API, its WebSockets included, is 'self'. */
const CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

const AssetParams = Type.Object({ '*': Type.String({ pattern: '^[\\w-]+(\\.[\\w-]+)*$', maxLength: 200 }) })

/**
 * The web console at / (and /webui, as Kubo has it): its files are public,
 * since a browser loads them before it has any credential; every API call
 * the console then makes is checked like any other.
 */
export const consoleRoutes: Routes = (app) => {
  // Only reply.sendFile: the plugin's own routes would name no permission.
  void app.register(fastifyStatic, { root: CONSOLE_DIR, serve: false })
  app.get('/', { permission: 'public', schema: { tags, summary: 'The web console' } }, async (_request, reply) => {
    // The page holds an API key: no script but its own, and no other site may frame it (clickjacking).
    return reply.header('content-security-policy', CSP).header('x-frame-options', 'DENY').sendFile('index.html', consoleDir())
  })
  app.get('/webui', { permission: 'public', schema: { tags, summary: 'The web console, where Kubo serves its own' } }, async (_request, reply) => reply.redirect('/', 302))
  app.get('/assets/*', { permission: 'public', schema: { tags, summary: 'Scripts and styles of the web console', params: AssetParams } }, async (request, reply) => {
    // Vite names them by their content's hash: a name never changes its bytes.
    return reply.sendFile(`assets/${(request.params as { '*': string })['*']}`, consoleDir(), { maxAge: '365d', immutable: true })
  })
}
