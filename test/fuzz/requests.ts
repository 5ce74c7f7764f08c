/**
 * Bad requests for an operation, generated from its schemas with fast-check
 * and then broken on purpose: wrong types, missing and extra fields, huge
 * strings, deep nesting, edge numbers, invalid CIDs, multiaddrs and UTF-8,
 * NUL bytes, bad multipart, wrong content types, empty, oversized and
 * malformed bodies, long query strings, bad path parameters, wrong methods.
 */
import fc from 'fast-check'
import type { Operation, Parameter, Schema } from './openapi.ts'

export interface FuzzRequest {
  method: string
  /** Path and query exactly as sent: it may hold bad percent-encoding on purpose. */
  target: string
  headers: Record<string, string>
  body?: Uint8Array
  /** What the case does wrong, for the report. */
  mutation: string
}

/** What the generator may use of the daemon under test. */
export interface FuzzContext {
  peerId: string
  /** The daemon's API keys, where it requires credentials: one with every permission, and one with each permission alone. */
  keys?: { all: string, only: Record<string, string> }
}

const HELLO = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const PEER = '12D3KooWE2nwJwawf89cLr7RRXdnEGzX7z8Febrq61hLy6KQsWUQ'

/** Strings that have broken parsers before: CIDs and multiaddrs good and bad, names, paths, control characters. */
function interestingStrings (ctx: FuzzContext): string[] {
  return [
    '', ' ', 'x', 'a'.repeat(300), 'bafkqaaa', HELLO, `/ipfs/${HELLO}`, `/ipfs/${HELLO}/missing`, `ipfs://${HELLO}`, 'Qm', 'bafybeigdyrzt',
    'notacid', 'bafyreib', `/ipns/${PEER}`, '/ipns/k51qzi5uqu5d', ctx.peerId, PEER, `${PEER.slice(0, -2)}zz`,
    '/ip4/999.0.0.1/tcp/1', '/p2p/notapeer', '/dns4/localhost/tcp/1', '/tcp/abc', '/ip6/::1/udp/x',
    'a\u0000b', '\u0000', '../../../etc/passwd', '..', '.', '/', '%00', '%zz', '\ud800', '\udfff\ud800', '🦀'.repeat(10), '\u202eevil',
    'tiny-gpt', 'tiny-gpt:latest', 'tiny-embed', 'model:tag:extra', ':tag', 'task_1', 'task_0', 'task_-1', 'training_1', '1', '0', '-1',
    'NaN', 'Infinity', '1e309', 'null', 'true', '{}', '[]', '<script>alert(1)</script>', "' OR 1=1 --", 'http://example.com/x',
    'self', 'CON', 'a/b', 'a\\b', '\r\nX-Injected: 1', 'text/plain', 'size-0', 'size-999999999', 'rabin', '5m', '-1s', '1h30m', 'never'
  ]
}

const INTERESTING_NUMBERS = [0, -1, 1, 0.5, -0.5, 1.5, 2 ** 31, -(2 ** 31), 2 ** 53 + 1, -(2 ** 53), 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER]

function types (schema: Schema): string[] {
  return schema.type == null ? [] : Array.isArray(schema.type) ? schema.type : [schema.type]
}

/** Values the schema allows (mostly), with the interesting strings and numbers mixed in. */
export function valueOf (schema: Schema | undefined, ctx: FuzzContext, depth = 0): fc.Arbitrary<unknown> {
  if (schema == null || depth > 5) return fc.constant(null)
  if ('const' in schema) return fc.constant(schema.const)
  if (schema.enum != null && schema.enum.length > 0) return fc.constantFrom(...schema.enum)
  const alternatives = schema.anyOf ?? schema.oneOf
  if (alternatives != null && alternatives.length > 0) return fc.oneof(...alternatives.map(s => valueOf(s, ctx, depth + 1)))
  if (schema.allOf != null && schema.allOf.length > 0) return valueOf(Object.assign({}, ...schema.allOf), ctx, depth + 1)
  const type = types(schema)[0]
  switch (type) {
    case 'object': {
      const properties = schema.properties ?? {}
      const model = Object.fromEntries(Object.entries(properties).map(([k, s]) => [k, valueOf(s, ctx, depth + 1)]))
      return fc.record(model, { requiredKeys: (schema.required ?? []).filter(k => k in properties) })
    }
    case 'array':
      return fc.array(valueOf(schema.items, ctx, depth + 1), { minLength: Math.min(schema.minItems ?? 0, 3), maxLength: Math.min(schema.maxItems ?? 3, 3) })
    case 'string':
      return fc.oneof(
        { weight: 3, arbitrary: fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.max(schema.minLength ?? 0, Math.min(schema.maxLength ?? 24, 24)) }) },
        { weight: 2, arbitrary: fc.constantFrom(...interestingStrings(ctx)) }
      )
    case 'integer':
      return fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: Math.ceil(schema.minimum ?? -100), max: Math.floor(Math.max(schema.maximum ?? 1000, schema.minimum ?? -100)) }) },
        { weight: 1, arbitrary: fc.constantFrom(...INTERESTING_NUMBERS) }
      )
    case 'number':
      return fc.oneof(
        { weight: 3, arbitrary: fc.double({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000, noNaN: true }) },
        { weight: 1, arbitrary: fc.constantFrom(...INTERESTING_NUMBERS) }
      )
    case 'boolean':
      return fc.boolean()
    case 'null':
      return fc.constant(null)
    default:
      return fc.jsonValue({ maxDepth: 2 })
  }
}

/** A value of another type than `schema` asks for. */
function otherTypeOf (schema: Schema | undefined): fc.Arbitrary<unknown> {
  const asked = new Set(types(schema ?? {}))
  const all: Array<[string, fc.Arbitrary<unknown>]> = [
    ['string', fc.constantFrom('x', '', 'NaN', '1e309')],
    ['integer', fc.constantFrom(1.5, -1, 2 ** 64)],
    ['number', fc.constantFrom(1e308, -1e308, 0)],
    ['boolean', fc.boolean()],
    ['object', fc.constantFrom({}, { a: 1 }, { __proto__: { polluted: true } }, { constructor: { prototype: { polluted: true } } })],
    ['array', fc.constantFrom([], [1, 'a', null], [[[]]])],
    ['null', fc.constant(null)]
  ]
  return fc.oneof(...all.filter(([type]) => !asked.has(type)).map(([, arb]) => arb))
}

/** An array nested `depth` deep, as JSON text: recursion in parsers and validators. */
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

const utf8 = new TextEncoder()
const bytes = (text: string): Uint8Array => utf8.encode(text)
const json = (value: unknown): Uint8Array => bytes(JSON.stringify(value))

const BOUNDARY = 'fuzzboundary7MA4YWxkTrZu0gW'

/** A multipart body of `parts`, each a field (no filename) or a file. */
function multipart (parts: Array<{ name: string, filename?: string, content: string | Uint8Array, type?: string }>, boundary = BOUNDARY): Uint8Array {
  const chunks: Uint8Array[] = []
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename == null ? '' : `; filename="${part.filename}"`}`
    chunks.push(bytes(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${part.type == null ? '' : `Content-Type: ${part.type}\r\n`}\r\n`))
    chunks.push(typeof part.content === 'string' ? bytes(part.content) : part.content)
    chunks.push(bytes('\r\n'))
  }
  chunks.push(bytes(`--${boundary}--\r\n`))
  return Buffer.concat(chunks)
}

const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`

/** Bodies that are wrong whatever the route takes. */
function badBodies (ctx: FuzzContext): Array<fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'body' | 'mutation'>>> {
  const jsonHeaders = { 'content-type': 'application/json' }
  return [
    fc.constant({ headers: jsonHeaders, body: new Uint8Array(0), mutation: 'empty JSON body' }),
    fc.constantFrom('{"model":', '{"a":1,}', "{'a':1}", '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', 'NaN', '{"a":1}{"b":2}', '\u0000', '[')
      .map(text => ({ headers: jsonHeaders, body: bytes(text), mutation: `malformed JSON ${JSON.stringify(text)}` })),
    fc.constantFrom(nested(100), nested(5000), `{"a":${nested(20_000)}}`).map(text => ({ headers: jsonHeaders, body: bytes(text), mutation: `JSON nested ${text.length / 2} deep` })),
    fc.constant({ headers: jsonHeaders, body: Buffer.concat([bytes('{"model":"'), Buffer.from([0xff, 0xfe, 0xc3]), bytes('","prompt":"x"}')]), mutation: 'invalid UTF-8 in a JSON string' }),
    fc.constant({ headers: jsonHeaders, body: json({ model: 'x', name: 'x', prompt: 'x', cid: 'x', ...{ '': 1 } }), mutation: 'an empty key' }),
    fc.constant({ headers: jsonHeaders, body: bytes(`{"pad":"${'a'.repeat(2 * 1_048_576)}"}`), mutation: 'a 2 MiB JSON body, over the limit' }),
    fc.constant({ headers: jsonHeaders, body: bytes(`{"pad":"${'a'.repeat(200_000)}","model":"${'m'.repeat(100_000)}"}`), mutation: 'huge strings inside the limit' }),
    fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'application/octet-stream', 'application/json; charset=latin1', 'image/png', 'x')
      .map(type => ({ headers: { 'content-type': type }, body: json({ model: 'x', arg: HELLO }), mutation: `content type ${type}` })),
    fc.constant({ headers: {}, body: json({ model: 'x' }), mutation: 'a body with no content type' }),
    fc.constant({ headers: { 'content-type': 'multipart/form-data' }, body: multipart([{ name: 'file', filename: 'x', content: 'x' }]), mutation: 'multipart without a boundary' }),
    fc.constant({ headers: { 'content-type': 'multipart/form-data; boundary=other' }, body: multipart([{ name: 'file', filename: 'x', content: 'x' }]), mutation: 'multipart with another boundary' }),
    fc.constant({ headers: { 'content-type': MULTIPART }, body: multipart([{ name: 'file', filename: 'x', content: 'x' }]).subarray(0, 60), mutation: 'multipart cut short' }),
    fc.constant({ headers: { 'content-type': MULTIPART }, body: new Uint8Array(0), mutation: 'multipart with no body' }),
    fc.constant({ headers: { 'content-type': MULTIPART }, body: bytes(`--${BOUNDARY}--\r\n`), mutation: 'multipart with no parts' }),
    fc.constantFrom('a\u0000b', '%zz', '../../etc/passwd', '%2e%2e%2fx', '', 'a'.repeat(5000), '\ud800', '/abs', 'dir/../../x')
      .map(filename => ({ headers: { 'content-type': MULTIPART }, body: multipart([{ name: 'file', filename, content: 'hello' }]), mutation: `multipart file named ${JSON.stringify(filename.slice(0, 40))}` })),
    fc.constant({ headers: { 'content-type': MULTIPART }, body: multipart(Array.from({ length: 1001 }, (_, i) => ({ name: `f${i}`, content: 'x' }))), mutation: '1,001 multipart fields' }),
    fc.constant({ headers: { 'content-type': MULTIPART }, body: multipart([{ name: 'file', filename: 'x', content: 'x', type: 'application/x-directory' }, { name: 'file', filename: 'x/y', content: 'y' }]), mutation: 'multipart: a file inside a file' }),
    fc.constant({ headers: { 'content-type': MULTIPART }, body: multipart([{ name: 'modelId', content: 'x' }, { name: 'metadata', content: '{not json' }, { name: 'file', filename: 'config.json', content: '{' }]), mutation: 'multipart: bad JSON fields and files' }),
    fc.constantFrom(...interestingStrings(ctx)).map(s => ({ headers: { 'content-type': 'text/plain' }, body: bytes(s), mutation: `text body ${JSON.stringify(s.slice(0, 40))}` }))
  ]
}

/** Mutations of a JSON body the route's schema describes. */
function badJsonBodies (schema: Schema, ctx: FuzzContext): Array<fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'body' | 'mutation'>>> {
  const headers = { 'content-type': 'application/json' }
  const properties = Object.entries(schema.properties ?? {})
  const base = valueOf(schema, ctx).map(v => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {}) as Record<string, unknown>)
  const out: Array<fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'body' | 'mutation'>>> = [
    valueOf(schema, ctx).map(v => ({ headers, body: json(v), mutation: 'generated from the schema' })),
    otherTypeOf(schema).map(v => ({ headers, body: json(v), mutation: `body of the wrong type: ${JSON.stringify(v)}` })),
    base.map(v => ({ headers, body: json({ ...v, __fuzz_extra: { a: [1] } }), mutation: 'an extra field' }))
  ]
  if (properties.length > 0) {
    const field = fc.constantFrom(...properties)
    out.push(
      fc.tuple(base, field).chain(([v, [name, s]]) => otherTypeOf(s).map(bad => ({ headers, body: json({ ...v, [name]: bad }), mutation: `${name} of the wrong type: ${JSON.stringify(bad)}` }))),
      fc.tuple(base, field, fc.constantFrom(...interestingStrings(ctx))).map(([v, [name], s]) => ({ headers, body: json({ ...v, [name]: s }), mutation: `${name} = ${JSON.stringify(s.slice(0, 60))}` })),
      fc.tuple(base, field, fc.constantFrom(...INTERESTING_NUMBERS)).map(([v, [name], n]) => ({ headers, body: json({ ...v, [name]: n }), mutation: `${name} = ${n}` })),
      fc.tuple(base, field).map(([v, [name]]) => ({ headers, body: json({ ...v, [name]: 'z'.repeat(300_000) }), mutation: `${name} a 300,000-character string` })),
      fc.tuple(base, field).map(([v, [name]]) => ({ headers, body: bytes(JSON.stringify({ ...v, [name]: 0 }).replace(`"${name}":0`, `"${name}":${nested(3000)}`)), mutation: `${name} nested 3,000 deep` })),
      fc.tuple(base, field).map(([v, [name]]) => ({ headers, body: bytes(JSON.stringify({ ...v, [name]: 0 }).replace(`"${name}":0`, `"${name}":NaN`)), mutation: `${name} = NaN` }))
    )
  }
  const required = (schema.required ?? []).filter(name => schema.properties?.[name] != null)
  if (required.length > 0) {
    out.push(fc.tuple(base, fc.constantFrom(...required)).map(([v, name]) => {
      const { [name]: _dropped, ...rest } = v
      return { headers, body: json(rest), mutation: `without required ${name}` }
    }))
  }
  return out
}

/** A string percent-encoded as UTF-8, a lone surrogate as the three bytes WTF-8 gives it (which UTF-8 forbids). */
function encode (s: string): string {
  try {
    return encodeURIComponent(s)
  } catch {
    return [...s].map(c => /^[\ud800-\udfff]$/.test(c) ? Array.from(Buffer.from([0xe0 | (c.charCodeAt(0) >> 12), 0x80 | ((c.charCodeAt(0) >> 6) & 0x3f), 0x80 | (c.charCodeAt(0) & 0x3f)]), b => `%${b.toString(16).toUpperCase()}`).join('') : encodeURIComponent(c)).join('')
  }
}

/** One query parameter's value as sent, already encoded. */
function queryValue (param: Parameter, ctx: FuzzContext): fc.Arbitrary<string[]> {
  const one = (v: unknown): string => encode(typeof v === 'string' ? v : JSON.stringify(v))
  const schema = param.schema
  if (types(schema)[0] === 'array') return fc.array(valueOf(schema.items, ctx).map(one), { minLength: 1, maxLength: 3 })
  return valueOf(schema, ctx).map(v => [one(v)])
}

/** Raw query values that are wrong however the parameter is read. */
const RAW_QUERY_VALUES = ['%zz', '%', '%FF%FE', '%00', 'a%00b', '%C0%AF', '%ED%A0%80', 'x'.repeat(10_000), '-1', '1e309', 'NaN', '1.5', 'true', '', '%E2%80%AE', encodeURIComponent('\r\nX: y')]

function pathFor (op: Operation, values: Map<string, string>): string {
  return op.path.replace(/\{([^}]+)\}/g, (_, name: string) => values.get(name) ?? 'x')
}

/** The requests of one case: the operation called with one of its inputs made bad. */
export function requestsFor (op: Operation, ctx: FuzzContext): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.parameters.filter(p => p.in === 'path')
  const queryParams = op.parameters.filter(p => p.in === 'query')
  const goodPath = fc.tuple(...pathParams.map(p => valueOf(p.schema, ctx).map(v => [p.name, encode(String(v))] as [string, string])))
    .map(entries => pathFor(op, new Map(entries)))
  const goodQuery = fc.tuple(...queryParams.map(p => (p.required ? queryValue(p, ctx) : fc.option(queryValue(p, ctx), { nil: undefined })).map(values => (values ?? []).map(v => `${encode(p.name)}=${v}`))))
    .map(pairs => pairs.flat().join('&'))
  const target = (path: string, query: string): string => query === '' ? path : `${path}?${query}`
  const goodBody = op.body == null ? fc.constant({ headers: {}, body: undefined }) : valueOf(op.body, ctx).map(v => ({ headers: { 'content-type': 'application/json' }, body: json(v) }))

  const cases: Array<fc.Arbitrary<FuzzRequest>> = []
  const bodies = [...badBodies(ctx), ...(op.body == null ? [] : badJsonBodies(op.body, ctx))]
  if (op.method !== 'GET' && op.method !== 'HEAD') {
    cases.push(fc.tuple(goodPath, goodQuery, fc.oneof(...bodies)).map(([path, query, b]) => ({ method: op.method, target: target(path, query), ...b })))
  }
  if (queryParams.length > 0) {
    cases.push(fc.tuple(goodPath, goodQuery, fc.constantFrom(...queryParams), fc.constantFrom(...RAW_QUERY_VALUES), goodBody).map(([path, query, param, raw, b]) => ({
      method: op.method,
      target: target(path, [query, `${encode(param.name)}=${raw}`].filter(q => q !== '').join('&')),
      ...b,
      mutation: `query ${param.name}=${raw.slice(0, 40)}`
    })))
  }
  cases.push(
    fc.tuple(goodPath, goodQuery, goodBody).map(([path, query, b]) => ({ method: op.method, target: target(path, query), ...b, mutation: 'generated from the schema' })),
    fc.tuple(goodPath, goodQuery, goodBody).map(([path, query, b]) => ({ method: op.method, target: target(path, [query, '__fuzz_unknown=1&arg=&arg=%00'].filter(q => q !== '').join('&')), ...b, mutation: 'unknown and empty query parameters' })),
    fc.tuple(goodPath, goodBody, fc.constantFrom(8_000, 60_000)).map(([path, b, length]) => ({ method: op.method, target: `${path}?arg=${'q'.repeat(length)}`, ...b, mutation: `a ${length}-character query string` })),
    fc.tuple(goodPath, fc.constantFrom('PUT', 'PATCH', 'DELETE', 'GET', 'POST').filter(m => m !== op.method)).map(([path, method]) => ({ method, target: path, headers: {}, mutation: `method ${method}` }))
  )
  if (pathParams.length > 0) {
    const raw = fc.constantFrom('%zz', '%00', 'a%2Fb', '..', '%2e%2e', 'x'.repeat(5000), '%FF', '%ED%A0%80', ...interestingStrings(ctx).map(encode).filter(s => s !== ''))
    cases.push(fc.tuple(fc.constantFrom(...pathParams), raw, goodQuery, goodBody).map(([param, value, query, b]) => ({
      method: op.method,
      target: target(pathFor(op, new Map([[param.name, value]])), query),
      ...b,
      mutation: `path ${param.name}=${value.slice(0, 40)}`
    })))
  }
  return fc.oneof(...cases)
}

/**
 * Who a request claims to be, where the daemon requires credentials: mostly
 * the key with every permission, so that the inputs reach the routes, then a
 * key with one other permission (403), none (401, then 429 past the limit of
 * requests without credentials), and broken credentials of every scheme.
 */
type Claimed = { headers: Record<string, string>, as: string }

export function credentialsFor (ctx: FuzzContext): fc.Arbitrary<Claimed> {
  const keys = ctx.keys
  if (keys == null) return fc.constant<Claimed>({ headers: {}, as: 'no credentials' })
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
  const basic = (text: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(text).toString('base64')}` })
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant<Claimed>({ headers: { 'x-api-key': keys.all }, as: 'the admin key' }) },
    { weight: 3, arbitrary: fc.constantFrom(...Object.entries(keys.only)).map(([permission, key]) => ({ headers: { 'x-api-key': key }, as: `a ${permission} key` })) },
    { weight: 3, arbitrary: fc.constant<Claimed>({ headers: {}, as: 'no credentials' }) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<Claimed>(
        { headers: { 'x-api-key': 'nd_not-a-key' }, as: 'an unknown key' },
        { headers: bearer('eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.'), as: 'an unsigned JWT' },
        { headers: bearer('a.b.c'), as: 'a JWT that does not decode' },
        { headers: basic('admin:wrong'), as: 'a wrong password' },
        { headers: basic('no colon'), as: 'basic credentials without a colon' },
        { headers: { authorization: 'Digest realm=x' }, as: 'an unknown scheme' },
        { headers: { authorization: 'Bearer' }, as: 'an empty bearer' },
        { headers: { 'x-api-key': 'k'.repeat(10_000) }, as: 'a 10,000-character key' }
      )
    }
  )
}
