import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { gzip as gzipCallback } from 'node:zlib'
import { Type } from 'typebox'
import type { FastifyInstance } from 'fastify'

const tags = ['graphql']

/**
 * GraphiQL's UMD build wants React and ReactDOM as globals and sets styles
 * inline; its fonts and images are data: URLs; the endpoint and its WebSocket
 * are 'self'. The page may hold a credential, so no script but these files,
 * and no other site may frame it.
 */
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

const require = createRequire(import.meta.url)
const gzip = promisify(gzipCallback)

/** A file of an installed package, found through its package.json: react's exports leave out its UMD builds. */
const packaged = (pkg: string, file: string): string => join(dirname(require.resolve(`${pkg}/package.json`)), file)

/** The page's files, in the order it loads them; GraphiQL's script needs React's two before it. */
const FILES = {
  react: packaged('react', 'umd/react.production.min.js'),
  reactDom: packaged('react-dom', 'umd/react-dom.production.min.js'),
  graphiql: packaged('graphiql', 'graphiql.min.js'),
  style: packaged('graphiql', 'graphiql.min.css'),
  init: fileURLToPath(new URL('../../static/graphiql.js', import.meta.url))
}

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' }

interface Asset { type: string, body: Buffer, gzipped: Buffer }

interface Playground { page: string, assets: Map<string, Asset> }

/**
 * The page and its files, read and gzipped once (GraphiQL's build is 3.5 MB
 * and not minified). Each file is named by its content's hash, so a browser
 * may keep it for a year: an upgrade changes the names.
 */
async function load (): Promise<Playground> {
  const assets = new Map<string, Asset>()
  const urls: Record<string, string> = {}
  for (const [key, path] of Object.entries(FILES)) {
    const body = await readFile(path)
    const ext = extname(path)
    const name = `${key}-${createHash('sha256').update(body).digest('hex').slice(0, 16)}${ext}`
    assets.set(name, { type: TYPES[ext], body, gzipped: await gzip(body) })
    urls[key] = `/api/v0/graphql/playground/${name}`
  }
  const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>node-daemon GraphQL playground</title>
<link rel="stylesheet" href="${urls.style}">
<style>html, body, #graphiql { height: 100%; margin: 0 }</style>
<script defer src="${urls.react}"></script>
<script defer src="${urls.reactDom}"></script>
<script defer src="${urls.graphiql}"></script>
<script defer src="${urls.init}"></script>
</head>
<body><div id="graphiql"></div></body>
</html>
`
  return { page, assets }
}

let loaded: Promise<Playground> | undefined

async function playground (): Promise<Playground> {
  if (loaded == null) {
    loaded = load()
    // A failed read is tried again on the next request rather than kept.
    loaded.catch(() => { loaded = undefined })
  }
  return loaded
}

const FileParams = Type.Object({ file: Type.String({ pattern: '^[\\w-]+\\.(js|css)$', maxLength: 100 }) })

/**
 * GraphiQL at /api/v0/graphql/playground, on the scope of the GraphQL
 * endpoint, with React and GraphiQL served by the node itself: mercurius's
 * own GraphiQL loads them from unpkg.com. Public, as the console's files
 * are: what the page then asks is checked per field.
 */
export function playgroundRoutes (scope: FastifyInstance): void {
  scope.get('/playground', { permission: 'public', schema: { tags, summary: 'GraphiQL: queries, mutations and subscriptions, and the schema' } }, async (_request, reply) => {
    const { page } = await playground()
    return reply.type('text/html; charset=utf-8').header('content-security-policy', CSP).header('x-frame-options', 'DENY').send(page)
  })
  scope.get('/playground/:file', { permission: 'public', schema: { tags, summary: 'The scripts and style of GraphiQL', params: FileParams } }, async (request, reply) => {
    const asset = (await playground()).assets.get((request.params as { file: string }).file)
    if (asset == null) return reply.callNotFound()
    reply.type(asset.type).header('cache-control', 'public, max-age=31536000, immutable').header('vary', 'accept-encoding')
    if (!/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) return reply.send(asset.body)
    return reply.header('content-encoding', 'gzip').send(asset.gzipped)
  })
}
