import type { Ajv, AnySchema, ValidateFunction } from 'ajv'

/**
 * A validator that Ajv compiles at its first call rather than now. Fastify
 * compiles every route's schemas when the server starts: that took ~0.6 s of
 * CPU at each daemon start, for hundreds of routes most of which a run never
 * calls. Fastify reads `errors` after a call, and `schemaEnv` to learn that it
 * may pass the parent (so that Ajv can coerce a root value in place).
 */
function compiledAtFirstUse<T> (compile: () => ValidateFunction<T>): ValidateFunction<T> {
  let compiled: ValidateFunction<T> | undefined
  const get = (): ValidateFunction<T> => (compiled ??= compile())
  const validate = ((data: unknown, context?: Parameters<ValidateFunction<T>>[1]) => get()(data, context)) as ValidateFunction<T>
  Object.defineProperties(validate, {
    errors: { get: () => compiled?.errors, set: (errors) => { get().errors = errors } },
    schemaEnv: { get: () => get().schemaEnv },
    schema: { get: () => get().schema }
  })
  return validate
}

/**
 * Makes `ajv.compile` defer each schema's compilation to its first use. A
 * schema with an `$id` is still compiled at once: Ajv registers it under that
 * id, which a later lookup by id expects to find.
 */
export function compileOnFirstUse (ajv: Ajv): Ajv {
  const compile = ajv.compile.bind(ajv)
  ajv.compile = ((schema: AnySchema, meta?: boolean) => {
    if (typeof schema === 'object' && schema.$id !== undefined) return compile(schema, meta)
    return compiledAtFirstUse(() => compile(schema, meta))
  }) as Ajv['compile']
  return ajv
}
