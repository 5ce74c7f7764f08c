/**
 * Document 000's `metadata_filters` as a LanceDB SQL predicate: a field's
 * value for equality, or an object of conditions, `{"$gte": 1800, "$lt":
 * 1900}`, `{"$in": ["a", "b"]}` (the `$` may be left out). Fields are those
 * of the collection's metadata schema, plus where a chunk came from: path,
 * source_cid, root_cid, doc_id, format. Values are checked against the
 * field's type and quoted here, so nothing a caller sends becomes SQL.
 */
import { InvalidSearchRequestError } from './errors.ts'
import { metadataColumn } from './store.ts'
import type { MetadataFieldType } from '@node-daemon/cluster'

type Scalar = string | number | boolean

const BUILTIN: Record<string, MetadataFieldType> = { path: 'string', source_cid: 'string', root_cid: 'string', doc_id: 'string', format: 'string' }

const OPERATORS: Record<string, string> = { eq: '=', ne: '!=', gt: '>', gte: '>=', lt: '<', lte: '<=' }

export function compileFilters (filters: Record<string, unknown> | undefined, schema: Record<string, MetadataFieldType>): string | undefined {
  if (filters == null) return undefined
  const clauses: string[] = []
  for (const [field, condition] of Object.entries(filters)) {
    const type = schema[field] ?? BUILTIN[field]
    if (type == null) {
      throw new InvalidSearchRequestError(`metadata filter on ${JSON.stringify(field.slice(0, 100))}: the collection's metadata schema has ${Object.keys(schema).join(', ') || 'no fields'}; also path, source_cid, root_cid, doc_id and format`)
    }
    const column = field in schema ? metadataColumn(field) : field
    if (condition == null || typeof condition !== 'object' || Array.isArray(condition)) {
      clauses.push(`${column} = ${literal(field, type, condition)}`)
      continue
    }
    const entries = Object.entries(condition)
    if (entries.length === 0) throw new InvalidSearchRequestError(`metadata filter on ${field} has no condition`)
    for (const [key, value] of entries) {
      const op = key.replace(/^\$/, '')
      if (op === 'in' || op === 'nin') {
        if (!Array.isArray(value) || value.length === 0) throw new InvalidSearchRequestError(`metadata filter ${field}.${key} needs a non-empty array`)
        clauses.push(`${column} ${op === 'in' ? 'IN' : 'NOT IN'} (${value.map(v => literal(field, type, v)).join(', ')})`)
      } else if (OPERATORS[op] != null) {
        if ((op !== 'eq' && op !== 'ne') && type === 'boolean') throw new InvalidSearchRequestError(`metadata filter ${field}.${key}: a boolean has no order`)
        clauses.push(`${column} ${OPERATORS[op]} ${literal(field, type, value)}`)
      } else {
        throw new InvalidSearchRequestError(`metadata filter ${field} has an unknown operator ${JSON.stringify(key.slice(0, 20))}: use $eq, $ne, $gt, $gte, $lt, $lte, $in or $nin`)
      }
    }
  }
  return clauses.length === 0 ? undefined : clauses.map(c => `(${c})`).join(' AND ')
}

export function hasType (value: unknown, type: MetadataFieldType): value is Scalar {
  return typeof value === 'string' ? type === 'string' : typeof value === 'number' ? type === 'number' : typeof value === 'boolean' && type === 'boolean'
}

function literal (field: string, type: MetadataFieldType, value: unknown): string {
  if (!hasType(value, type)) throw new InvalidSearchRequestError(`metadata filter on ${field} needs a ${type}, got ${JSON.stringify(value)?.slice(0, 100)}`)
  const v = value as Scalar
  if (type === 'number' && !Number.isFinite(v)) throw new InvalidSearchRequestError(`metadata filter on ${field} needs a finite number`)
  return type === 'string' ? `'${String(v).replaceAll("'", "''")}'` : String(v)
}
