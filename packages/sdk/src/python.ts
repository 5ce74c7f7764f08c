/**
 * The Python SDK: a package of the standard library only (Python 3.11 or
 * later, for TypedDict's Required). models.py holds a TypedDict for every
 * JSON body and described answer; client.py a Client with one method per
 * operation, path parameters positional and query parameters by keyword;
 * _transport.py (runtime/transport.py) makes the HTTP calls.
 */
import { readFile } from 'node:fs/promises'
import { operationsOf, pascal } from './operations.ts'
import type { JsonSchema, OpenApiDocument, Operation, Parameter } from './operations.ts'
import type { SdkFile } from './index.ts'

const KEYWORDS = new Set([
  'False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else', 'except',
  'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise', 'return', 'try',
  'while', 'with', 'yield'
])

/** The names every method has besides its parameters. */
const RESERVED = new Set(['self', 'body', 'raw', 'content_type'])

/** A Python identifier for an API name: `cid-version` → `cid_version`, `from` → `from_`, `*` → `path`. */
export function identifier (name: string, reserved: ReadonlySet<string> = RESERVED): string {
  let id = name === '*' ? 'path' : name.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(\d)/, '_$1')
  if (id === '' || /^_+$/.test(id)) id = 'value'
  while (KEYWORDS.has(id) || reserved.has(id)) id += '_'
  return id
}

/** A Python string literal. */
const str = (value: string): string => JSON.stringify(value)

/** Text for a docstring: no closing quotes or escapes inside it. */
const doc = (text: string): string => text.replace(/\\/g, '\\\\').replace(/"""/g, '\\"\\"\\"')

/** A literal of an enum or const value, or undefined when Python's Literal cannot hold it. */
function literal (value: unknown): string | undefined {
  if (typeof value === 'string') return str(value)
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  if (typeof value === 'boolean') return value ? 'True' : 'False'
  if (value === null) return 'None'
  return undefined
}

/** Writes models.py: each object schema with properties is a TypedDict, defined before what uses it. */
class Models {
  readonly definitions: string[] = []
  readonly #names = new Set<string>()

  /** The Python type of `schema`; an object with properties becomes a TypedDict named `name`. */
  type (schema: JsonSchema | undefined, name: string): string {
    if (schema == null) return 'Any'
    const union = schema.anyOf ?? schema.oneOf
    if (union != null) return this.#union(union.map((s, i) => this.type(s, `${name}${i + 1}`)))
    if (schema.allOf?.length === 1) return this.type(schema.allOf[0], name)
    if (schema.const !== undefined) return this.#literals([schema.const])
    if (schema.enum != null) return this.#literals(schema.enum)
    const types = Array.isArray(schema.type) ? schema.type : schema.type == null ? [] : [schema.type]
    if (types.length > 1) return this.#union(types.map(t => this.type({ ...schema, type: t }, name)))
    switch (types[0]) {
      case 'string': return 'str'
      case 'integer': return 'int'
      case 'number': return 'float'
      case 'boolean': return 'bool'
      case 'null': return 'None'
      case 'array': return `list[${this.type(schema.items, `${name}Item`)}]`
      case 'object': return this.#object(schema, name)
      default: return schema.properties != null ? this.#object(schema, name) : 'Any'
    }
  }

  #union (types: string[]): string {
    const unique = [...new Set(types)]
    return unique.includes('Any') ? 'Any' : unique.join(' | ')
  }

  #literals (values: unknown[]): string {
    const literals = values.map(literal)
    return literals.every(l => l != null) ? `Literal[${literals.join(', ')}]` : 'Any'
  }

  #object (schema: JsonSchema, name: string): string {
    const properties = Object.entries(schema.properties ?? {})
    if (properties.length === 0) {
      const values = typeof schema.additionalProperties === 'object' ? this.type(schema.additionalProperties, `${name}Value`) : 'Any'
      return `dict[str, ${values}]`
    }
    let unique = name
    for (let i = 2; this.#names.has(unique); i++) unique = `${name}${i}`
    this.#names.add(unique)
    const required = new Set(schema.required ?? [])
    const fields = properties.map(([key, property]) => {
      const type = this.type(property, `${unique}${pascal(identifier(key).toLowerCase())}`)
      return `    ${str(key)}: ${required.has(key) ? `Required[${type}]` : type},`
    })
    // The functional form takes any key, `cid-version` and `from` included.
    const lines = [`${unique} = TypedDict(${str(unique)}, {`, ...fields, '}, total=False)']
    if (schema.description != null) lines.push(`"""${doc(schema.description)}"""`)
    this.definitions.push(lines.join('\n'))
    return unique
  }
}

interface Argument { id: string, name: string, type: string, required: boolean }

function argumentsOf (models: Models, op: Operation, params: Parameter[], where: string): Argument[] {
  const taken = new Set(RESERVED)
  return params.map(p => {
    const id = identifier(p.name, taken)
    taken.add(id)
    return { id, name: p.name, type: models.type(p.schema, `${pascal(op.name)}${where}${pascal(identifier(p.name).toLowerCase())}`), required: p.required }
  })
}

function method (models: Models, op: Operation): string {
  const type = pascal(op.name)
  const path = argumentsOf(models, op, op.pathParams, 'Path')
  // Query names are keyword arguments after the path's: none may repeat a path parameter's name.
  const query = argumentsOf(models, op, op.query, 'Query').map(q => path.some(p => p.id === q.id) ? { ...q, id: `${q.id}_query` } : q)
  const body = op.body == null ? undefined : models.type(op.body.schema, `${type}Body`)
  const answer = op.response == null ? 'Any' : models.type(op.response, `${type}Response`)
  const params = [
    'self',
    ...path.map(p => `${p.id}: ${p.type}`),
    '*',
    ...query.filter(q => q.required).map(q => `${q.id}: ${q.type}`),
    ...query.filter(q => !q.required).map(q => `${q.id}: ${q.type} | None = None`),
    ...(body == null ? [] : [`body: ${body} | None = None`]),
    'raw: bytes | None = None',
    'content_type: str | None = None'
  ]
  const summary = op.summary ?? `${op.method.toUpperCase()} ${op.path}`
  const call = [
    str(op.method),
    str(op.path),
    `path_params={${path.map(p => `${str(p.name)}: ${p.id}`).join(', ')}}`,
    `query={${query.map(q => `${str(q.name)}: ${q.id}`).join(', ')}}`,
    `body=${body == null ? 'None' : 'body'}`,
    'raw=raw',
    'content_type=content_type'
  ]
  return [
    `    def ${op.name}(${params.join(', ')}) -> ${answer}:`,
    `        """${doc(summary)}`,
    '',
    `        ${op.method.toUpperCase()} ${doc(op.path)}`,
    '        """',
    `        return self._transport.request(${call.join(', ')})`
  ].join('\n')
}

export async function pythonSdk (document: OpenApiDocument, options: { name: string }): Promise<SdkFile[]> {
  const pkg = options.name.replace(/[^A-Za-z0-9_]/g, '_')
  const models = new Models()
  const methods = operationsOf(document).map(op => method(models, op))
  const version = document.info?.version ?? '0.0.0'
  const client = [
    `"""The node-daemon API ${version}: one method per route, generated by \`node-daemon sdk\` from its OpenAPI document.`,
    '',
    'Path parameters are positional, query parameters keywords; `body` is the JSON body, `raw` any other',
    '(a multipart form, with its `content_type`). JSON answers come parsed, others as bytes; an error',
    'status raises ApiError."""',
    '',
    'from __future__ import annotations',
    '',
    'from typing import Any, Literal',
    '',
    'from ._transport import Transport',
    'from .models import *  # noqa: F401,F403',
    '',
    '',
    'class Client:',
    '    def __init__(self, base_url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 60.0) -> None:',
    '        """`token`: an API key or a login token, sent as Authorization: Bearer."""',
    '        self._transport = Transport(base_url, token, timeout)',
    '',
    methods.join('\n\n'),
    ''
  ].join('\n')
  const modelsPy = [
    `"""The JSON bodies and described answers of the node-daemon API ${version}, as TypedDicts."""`,
    '',
    'from __future__ import annotations',
    '',
    'from typing import Any, Literal, Required, TypedDict',
    '',
    '',
    models.definitions.join('\n\n\n'),
    ''
  ].join('\n')
  const init = [
    `"""A client of the node-daemon API ${version}, generated by \`node-daemon sdk\`."""`,
    '',
    'from ._transport import ApiError',
    'from .client import Client',
    'from . import models',
    '',
    '__all__ = ["ApiError", "Client", "models"]',
    ''
  ].join('\n')
  const pyproject = [
    '[project]',
    `name = ${str(options.name)}`,
    `version = ${str(version)}`,
    'description = "A client of the node-daemon API, generated by node-daemon sdk"',
    'requires-python = ">=3.11"',
    'dependencies = []',
    ''
  ].join('\n')
  return [
    { path: `${pkg}/__init__.py`, content: init },
    { path: `${pkg}/_transport.py`, content: await readFile(new URL('./runtime/transport.py', import.meta.url), 'utf8') },
    { path: `${pkg}/models.py`, content: modelsPy },
    { path: `${pkg}/client.py`, content: client },
    { path: 'pyproject.toml', content: pyproject }
  ]
}
