/**
 * The operations of an OpenAPI document as the generators need them: one
 * per route and method, with a name that is a valid identifier in every
 * target language, its parameters by where they go, and its JSON body and
 * answer schemas.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'delete' | 'patch'

const METHODS: readonly HttpMethod[] = ['get', 'post', 'put', 'delete', 'patch']

/** A JSON Schema, as far as the generators read one. */
export interface JsonSchema {
  type?: string | string[]
  properties?: Record<string, JsonSchema>
  required?: string[]
  additionalProperties?: boolean | JsonSchema
  items?: JsonSchema
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  allOf?: JsonSchema[]
  enum?: unknown[]
  const?: unknown
  description?: string
  $ref?: string
}

export interface OpenApiDocument {
  openapi: string
  info?: { title?: string, version?: string }
  paths: Record<string, Record<string, OpenApiOperation | undefined>>
  components?: { schemas?: Record<string, JsonSchema> }
}

interface OpenApiOperation {
  summary?: string
  description?: string
  tags?: string[]
  parameters?: Array<{ name: string, in: string, required?: boolean, description?: string, schema?: JsonSchema }>
  requestBody?: { required?: boolean, content?: Record<string, { schema?: JsonSchema }> }
  responses?: Record<string, { content?: Record<string, { schema?: JsonSchema }> }>
}

export interface Parameter {
  /** As the API spells it: `cid-version`, `model_id`, `*`. */
  name: string
  required: boolean
  description?: string
  schema: JsonSchema
}

export interface Operation {
  /** snake_case, unique in the document: `pin_add`, `get_v1_models_by_name`. */
  name: string
  method: HttpMethod
  path: string
  summary?: string
  pathParams: Parameter[]
  query: Parameter[]
  /** The JSON body, when the route takes one. */
  body?: { schema: JsonSchema, required: boolean }
  /** The JSON answer of a 200, when the document gives its schema. */
  response?: JsonSchema
}

/** Words of a path, without the `api` and `v0` that nearly every route shares; a parameter is `by_<name>`. */
function words (path: string, all: boolean): string[] {
  return path.split('/').filter(part => part !== '' && (all || (part !== 'api' && part !== 'v0')))
    .map(part => {
      const param = /^\{(.+)\}$/.exec(part)?.[1]
      return param == null ? part : `by_${param === '*' ? 'path' : param}`
    })
    .flatMap(part => part.split(/[^A-Za-z0-9]+/))
    .filter(part => part !== '')
    .map(part => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase())
}

/** Whether a path's GET and POST are one route that takes both, as Kubo's RPC routes do. */
function oneRoute (get: OpenApiOperation | undefined, post: OpenApiOperation | undefined): boolean {
  return get != null && post != null && get.summary === post.summary
}

/** The operations of `document`, in its order; a route served by GET and POST alike is one operation, POST. */
export function operationsOf (document: OpenApiDocument): Operation[] {
  const found: Array<Omit<Operation, 'name'> & { prefixed: boolean }> = []
  for (const [path, item] of Object.entries(document.paths)) {
    const methods = METHODS.filter(m => item[m] != null)
    const merged = oneRoute(item.get, item.post)
    for (const method of methods) {
      if (merged && method === 'get') continue
      const op = item[method] as OpenApiOperation
      const params = op.parameters ?? []
      const param = (p: typeof params[number]): Parameter => ({ name: p.name, required: p.required === true, description: p.description, schema: p.schema ?? {} })
      const json = op.requestBody?.content?.['application/json']?.schema
      const answer = op.responses?.['200']?.content?.['application/json']?.schema
      found.push({
        method,
        path,
        summary: op.summary,
        pathParams: params.filter(p => p.in === 'path').map(param),
        query: params.filter(p => p.in === 'query').map(param),
        body: json == null ? undefined : { schema: json, required: op.requestBody?.required === true },
        response: answer,
        // A path with one operation is named by its path alone; with several, by method and path.
        prefixed: methods.length - (merged ? 1 : 0) > 1 || method === 'delete'
      })
    }
  }
  const nameOf = (op: typeof found[number], all: boolean): string => [...(op.prefixed ? [op.method] : []), ...words(op.path, all)].join('_') || 'root'
  const short = found.map(op => nameOf(op, false))
  const counts = new Map<string, number>()
  for (const name of short) counts.set(name, (counts.get(name) ?? 0) + 1)
  // Names that collide (/v1/models and /api/v1/models) take every word of their paths, which differ.
  const operations = found.map(({ prefixed: _prefixed, ...op }, i) => ({ ...op, name: counts.get(short[i]) === 1 ? short[i] : nameOf(found[i], true) }))
  const seen = new Set<string>()
  for (const op of operations) {
    // Paths that differ only in punctuation (a-b, a_b) are the one case left.
    if (seen.has(op.name)) throw new Error(`two operations of the document are both named ${op.name}: rename a route`)
    seen.add(op.name)
  }
  return operations
}

/** `pin_add` → `PinAdd`. */
export function pascal (name: string): string {
  return name.split('_').filter(w => w !== '').map(w => w[0].toUpperCase() + w.slice(1)).join('')
}
