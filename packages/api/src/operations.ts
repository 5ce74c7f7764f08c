/**
 * The operation layer: each operation of the node that more than one API
 * reaches (a REST route, document 000's method caller, GraphQL) is defined
 * once here, with its permission, its input and output schemas and the one
 * call of the node it makes. Callers map their request onto the input and the
 * output onto their answer; validation, the permission and the error mapping
 * (errors.ts) are the operation's, so they cannot differ between callers.
 */
import { Type } from 'typebox'
import { requestSignal } from './stream.ts'
import { kuboRoute } from './routes/route.ts'
import type { KuboRoute } from './routes/route.ts'
import type { RoutePermission } from '@node-daemon/access'
import type { Node } from '@node-daemon/daemon'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Static, TObject } from 'typebox'
import type { Validator } from 'typebox/compile'

export interface Operation<I extends TObject = TObject, O extends TObject = TObject> {
  /** Document 000's method name, served at POST /api/<name>. */
  name: string
  summary: string
  tags: string[]
  /** What a caller needs, by whatever route it comes. */
  permission: RoutePermission
  /** Every field the operation takes; unknown fields are refused, not ignored. */
  input: I
  /** The order in which positional `args` fill the input's fields, as the Python method's parameters. */
  args: ReadonlyArray<keyof Static<I> & string>
  /** The answer, without document 000's `success` flag. */
  output: O
  run: (node: Node, input: Static<I>, signal: AbortSignal) => Promise<Static<O>>
}

/** Typed as given: the generic parameters come from the schemas. */
export function defineOperation<I extends TObject, O extends TObject> (op: Operation<I, O>): Operation<I, O> {
  return op
}

/** The arguments of a call do not fit the operation's input. */
export class InvalidArgumentsError extends Error {
  static name = 'InvalidArgumentsError'
  name = 'InvalidArgumentsError'
}

/** Each operation's input schema compiled on its first call: checking against the schema itself interpreted it anew on every call. */
const validators = new WeakMap<TObject, Validator>()
/** TypeBox's compiler, loaded at the first call: its ~300 modules were a tenth of what every daemon start loaded. */
let compiler: Promise<typeof import('typebox/compile')> | undefined

async function validatorOf (schema: TObject): Promise<Validator> {
  let validator = validators.get(schema)
  if (validator == null) {
    const { Compile } = await (compiler ??= import('typebox/compile'))
    validator = validators.get(schema) ?? Compile(schema)
    validators.set(schema, validator)
  }
  return validator
}

/**
 * An input with the schema's defaults filled in (in place: callers pass what they built from the request),
 * checked against it; the first problem is the message. Nothing here walks the value deeper than the
 * schema goes, so a value nested thousands deep is refused rather than overflowing the stack.
 */
export async function parseInput<I extends TObject> (op: Operation<I, TObject>, value: unknown): Promise<Static<I>> {
  const validator = await validatorOf(op.input)
  const input = validator.Default(value)
  if (validator.Check(input)) return input as Static<I>
  const [first] = validator.Errors(input)
  const where = first?.instancePath === '' || first == null ? 'its input' : first.instancePath.slice(1).replaceAll('/', '.')
  throw new InvalidArgumentsError(`${op.name}: ${where} ${first?.message ?? 'is not valid'}`)
}

/** Document 000's call `{"args": [...], "kwargs": {...}}` as the operation's input: positional args fill the declared order. */
export async function callInput<I extends TObject> (op: Operation<I, TObject>, args: unknown[] = [], kwargs: Record<string, unknown> = {}): Promise<Static<I>> {
  if (args.length > op.args.length) {
    throw new InvalidArgumentsError(`${op.name} takes at most ${op.args.length} positional arguments (${op.args.join(', ')}), ${args.length} were given`)
  }
  const input: Record<string, unknown> = { ...kwargs }
  args.forEach((value, i) => {
    const name = op.args[i]
    if (name in kwargs) throw new InvalidArgumentsError(`${op.name} got two values for argument ${name}`)
    input[name] = value
  })
  return await parseInput(op, input)
}

/** Runs an operation on an input from any caller: validated, then the node's call. */
export async function invoke<I extends TObject, O extends TObject> (node: Node, op: Operation<I, O>, input: unknown, signal: AbortSignal): Promise<Static<O>> {
  return op.run(node, await parseInput(op, input), signal)
}

export interface KuboOperationRoute<O extends TObject> extends Omit<KuboRoute, 'permission' | 'handler' | 'tags'> {
  /** The operation's input from the Kubo request: query args and the JSON body of document 000. */
  input: (request: FastifyRequest) => unknown
  /** The answer: the operation's output with `success`, plus Kubo's own field names where it has them. */
  answer?: (output: Static<O>) => object
}

/** A Kubo RPC route (/api/v0/<path>) onto an operation: its permission, validation and call are the operation's. */
export function kuboOperation<I extends TObject, O extends TObject> (app: FastifyInstance, node: Node, op: Operation<I, O>, route: KuboOperationRoute<O>): void {
  kuboRoute(app, {
    ...route,
    permission: op.permission,
    tags: op.tags,
    handler: async (request, reply) => {
      const output = await invoke(node, op, route.input(request), requestSignal(reply))
      return { success: true, ...output, ...route.answer?.(output) }
    }
  })
}

/** An object whose fields are the node's own views, passed through as they are. */
export const Loose = Type.Object({}, { additionalProperties: true })
