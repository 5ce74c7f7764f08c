/**
 * Ollama's Modelfile: FROM (a model name or CID), PARAMETER, TEMPLATE, SYSTEM,
 * as /api/create takes it. A created model shares its base's bytes and
 * records only what the Modelfile changes.
 */
import { DTYPES } from '@node-daemon/runtime/files'
import { InvalidModelfileError } from './errors.ts'
import type { GenerateOptions } from './interface.ts'

export interface Modelfile {
  from: string
  options: GenerateOptions
  /** `PARAMETER dtype q4`: the ONNX variant the model loads; a property of the model, not of sampling. */
  dtype?: string
  template?: string
  system?: string
}

const NUMERIC: Record<string, 'float' | 'int'> = {
  temperature: 'float',
  top_p: 'float',
  repeat_penalty: 'float',
  top_k: 'int',
  repeat_last_n: 'int',
  seed: 'int',
  num_predict: 'int',
  min_p: 'float',
  typical_p: 'float',
  tfs_z: 'float',
  presence_penalty: 'float',
  frequency_penalty: 'float',
  mirostat: 'int',
  mirostat_tau: 'float',
  mirostat_eta: 'float',
  num_ctx: 'int',
  num_keep: 'int'
}

export function parseModelfile (text: string): Modelfile {
  const options: GenerateOptions = {}
  const stops: string[] = []
  let from: string | undefined
  let template: string | undefined
  let system: string | undefined
  let dtype: string | undefined
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '' || line.startsWith('#')) continue
    const match = /^(\S+)\s*(.*)$/.exec(line) as RegExpExecArray
    const instruction = match[1].toUpperCase()
    let rest = match[2]
    // A parameter's value is quoted after its key: PARAMETER stop """a line break""".
    let key = ''
    if (instruction === 'PARAMETER') [, key, rest] = /^(\S*)\s*(.*)$/.exec(rest) as RegExpExecArray
    // """...""" values may span lines.
    if (rest.startsWith('"""')) {
      let body = rest.slice(3)
      while (!body.includes('"""')) {
        if (++i >= lines.length) throw new InvalidModelfileError(`line ${i}: unterminated """`)
        body += '\n' + lines[i]
      }
      rest = body.slice(0, body.indexOf('"""'))
    } else if (rest.length >= 2 && rest.startsWith('"') && rest.endsWith('"')) {
      rest = rest.slice(1, -1)
    }
    switch (instruction) {
      case 'FROM': from = rest.trim(); break
      case 'TEMPLATE': template = rest; break
      case 'SYSTEM': system = rest; break
      case 'PARAMETER':
        if (key === 'dtype') dtype = checkedDtype(rest.trim())
        else parameter(options, stops, key, rest)
        break
      default: throw new InvalidModelfileError(`${instruction.slice(0, 40)} is not supported; use FROM, PARAMETER, TEMPLATE or SYSTEM`)
    }
  }
  if (from == null || from === '') throw new InvalidModelfileError('a Modelfile needs a FROM line')
  if (stops.length > 0) options.stop = stops
  const out: Modelfile = { from, options }
  if (template != null) out.template = template
  if (system != null) out.system = system
  if (dtype != null) out.dtype = dtype
  return out
}

function checkedDtype (value: string): string {
  if (!(DTYPES as readonly string[]).includes(value)) throw new InvalidModelfileError(`PARAMETER dtype: ${JSON.stringify(value.slice(0, 40))} is none of ${DTYPES.join(', ')}`)
  return value
}

function parameter (options: GenerateOptions, stops: string[], key: string, value: string): void {
  if (key === 'stop') {
    stops.push(value)
    return
  }
  const type = NUMERIC[key]
  const n = Number(value)
  if (type == null) throw new InvalidModelfileError(key === '' ? 'PARAMETER needs a name and a value' : `PARAMETER ${key.slice(0, 40)} is not supported`)
  if (value === '' || !Number.isFinite(n) || (type === 'int' && !Number.isInteger(n))) throw new InvalidModelfileError(`PARAMETER ${key}: ${JSON.stringify(value)} is not ${type === 'int' ? 'an integer' : 'a number'}`)
  ;(options as Record<string, number>)[key] = n
}

/**
 * A value as a Modelfile writes it: quoted, or triple-quoted when it spans
 * lines or holds quotes. Quotes are not escapes, so a value holding """ or
 * ending with " has no Modelfile form.
 */
export function quoteModelfileValue (value: string): string {
  if (!/["\n\\]/.test(value)) return `"${value}"`
  if (value.includes('"""') || value.endsWith('"')) throw new InvalidModelfileError(`${JSON.stringify(value.slice(0, 40))} cannot be written into a Modelfile: it holds """ or ends with "`)
  return `"""${value}"""`
}

/** The Modelfile that recreates a model, as /api/show returns it. */
export function renderModelfile (model: Modelfile): string {
  const lines = [`FROM ${model.from}`]
  if (model.template != null) lines.push(`TEMPLATE """${model.template}"""`)
  if (model.system != null) lines.push(`SYSTEM """${model.system}"""`)
  if (model.dtype != null) lines.push(`PARAMETER dtype ${model.dtype}`)
  for (const [key, value] of Object.entries(model.options)) {
    if (key === 'stop') for (const s of value as string[]) lines.push(`PARAMETER stop ${quoteModelfileValue(s)}`)
    else lines.push(`PARAMETER ${key} ${String(value)}`)
  }
  return lines.join('\n') + '\n'
}
