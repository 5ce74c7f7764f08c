/** Errors of grammar compilation, each with a stable `name` that the API maps to a status code. */

/** The JSON Schema uses a keyword (or a combination) that cannot be enforced exactly; `keyword` names it. */
export class UnsupportedSchemaError extends Error {
  static name = 'UnsupportedSchemaError'
  name = 'UnsupportedSchemaError'
  keyword: string
  path: string
  constructor (keyword: string, path: string, detail?: string) {
    super(`unsupported JSON Schema keyword "${keyword}" at ${path === '' ? '/' : path}${detail != null ? `: ${detail}` : ''}`)
    this.keyword = keyword
    this.path = path
  }
}

/** The grammar admits no output at all, or none that this vocabulary can spell. */
export class UnsatisfiableGrammarError extends Error {
  static name = 'UnsatisfiableGrammarError'
  name = 'UnsatisfiableGrammarError'
}
