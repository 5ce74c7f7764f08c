/**
 * The operations of the daemon's own OpenAPI document, as the fuzzer needs
 * them: a route added anywhere in the API is fuzzed without the suite
 * knowing of it.
 */

/** The part of JSON Schema that TypeBox writes and fastify-swagger passes on. */
export interface Schema {
  type?: string | string[]
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  items?: Schema
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  oneOf?: Schema[]
  allOf?: Schema[]
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  minItems?: number
  maxItems?: number
  pattern?: string
  format?: string
}

export interface Parameter {
  name: string
  in: 'query' | 'path' | 'header'
  required: boolean
  schema: Schema
}

export interface Operation {
  method: string
  /** The path as the document writes it, with `{name}` for path parameters. */
  path: string
  parameters: Parameter[]
  /** The JSON body's schema, when the route takes one. */
  body?: Schema
  bodyRequired: boolean
}

interface Document {
  paths: Record<string, Record<string, {
    parameters?: Array<{ name: string, in: string, required?: boolean, schema?: Schema }>
    requestBody?: { required?: boolean, content?: Record<string, { schema?: Schema }> }
  }>>
}

/** Every operation of the document, in the document's order. */
export function operationsOf (document: Document): Operation[] {
  const out: Operation[] = []
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      out.push({
        method: method.toUpperCase(),
        path,
        parameters: (op.parameters ?? [])
          .filter(p => p.in === 'query' || p.in === 'path' || p.in === 'header')
          .map(p => ({ name: p.name, in: p.in as Parameter['in'], required: p.required === true, schema: p.schema ?? {} })),
        body: op.requestBody?.content?.['application/json']?.schema,
        bodyRequired: op.requestBody?.required === true
      })
    }
  }
  return out
}

export async function fetchOperations (api: string): Promise<Operation[]> {
  const res = await fetch(`${api}/api/v0/openapi.json`, { signal: AbortSignal.timeout(30_000) })
  if (!res.ok) throw new Error(`the OpenAPI document answered ${res.status}`)
  return operationsOf(await res.json() as Document)
}
