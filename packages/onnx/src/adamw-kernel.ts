/**
 * AdamW's per-element update in WebAssembly SIMD, two elements at a time in
 * double precision: the same operations in the same order as the JavaScript
 * loop of optimizers.ts (float32 widened exactly, IEEE double arithmetic,
 * rounded to float32 to store), and so the same bits, in a third of its time
 * on data already in the kernel's memory. The module is assembled here from
 * its opcodes: no toolchain, no file.
 */

/** Reads and writes a WebAssembly memory: all four arrays must sit in it. */
export type AdamWKernel = (n: number, p: number, g: number, m: number, v: number, ...constants: number[]) => void

const SIMD = 0xfd
const LOCAL_GET = 0x20
const LOCAL_SET = 0x21
const F64X2_SPLAT = [SIMD, 0x14]
const LOAD64_ZERO = [SIMD, 0x5d]
const STORE64_LANE = [SIMD, 0x5b]
const DEMOTE = [SIMD, 0x5e]
const PROMOTE = [SIMD, 0x5f]
const SQRT = [SIMD, 0xef, 0x01]
const ADD = [SIMD, 0xf0, 0x01]
const SUB = [SIMD, 0xf1, 0x01]
const MUL = [SIMD, 0xf2, 0x01]
const DIV = [SIMD, 0xf3, 0x01]

/** The constants, in the order the kernel takes them after its addresses. */
export const ADAMW_CONSTANTS = ['scale', 'shrink', 'stepSize', 'rootCorrection2', 'beta1', 'beta2', 'keep1', 'keep2', 'eps'] as const

// Parameters: n (bytes to do, a multiple of 8), the byte addresses of p, g, m, v, then the constants. Locals after them.
const N = 0
const ADDRESS = { p: 1, g: 2, m: 3, v: 4 }
const constant = (name: typeof ADAMW_CONSTANTS[number]): number => 5 + ADAMW_CONSTANTS.indexOf(name)
const I = 5 + ADAMW_CONSTANTS.length
const GI = I + 1
const MI = I + 2
const VI = I + 3
/** The constants splatted to both lanes. */
const lanes = (name: typeof ADAMW_CONSTANTS[number]): number => VI + 1 + ADAMW_CONSTANTS.indexOf(name)

function leb (n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}

const section = (id: number, bytes: number[]): number[] => [id, ...leb(bytes.length), ...bytes]
const get = (local: number): number[] => [LOCAL_GET, local]
/** Two float32 at byte `i` of an array, widened. */
const load = (array: keyof typeof ADDRESS): number[] => [...get(ADDRESS[array]), ...get(I), 0x6a, ...LOAD64_ZERO, 3, 0, ...PROMOTE]
/** Narrows the two doubles on the stack to float32 and stores them at byte `i` of an array; the address goes first. */
const address = (array: keyof typeof ADDRESS): number[] => [...get(ADDRESS[array]), ...get(I), 0x6a]
const store = [...DEMOTE, ...STORE64_LANE, 3, 0, 0]

function module (): Uint8Array {
  const body = [
    // Locals: i, then gi, mi, vi and the splatted constants.
    2, 1, 0x7f, 3 + ADAMW_CONSTANTS.length, 0x7b,
    ...ADAMW_CONSTANTS.flatMap(name => [...get(constant(name)), ...F64X2_SPLAT, LOCAL_SET, lanes(name)]),
    0x02, 0x40, 0x03, 0x40,
    ...get(I), ...get(N), 0x4f, 0x0d, 1,
    // gi = g · scale
    ...load('g'), ...get(lanes('scale')), ...MUL, LOCAL_SET, GI,
    // mi = beta1 · m + keep1 · gi
    ...get(lanes('beta1')), ...load('m'), ...MUL, ...get(lanes('keep1')), ...get(GI), ...MUL, ...ADD, LOCAL_SET, MI,
    // vi = beta2 · v + (keep2 · gi) · gi
    ...get(lanes('beta2')), ...load('v'), ...MUL, ...get(lanes('keep2')), ...get(GI), ...MUL, ...get(GI), ...MUL, ...ADD, LOCAL_SET, VI,
    ...address('m'), ...get(MI), ...store,
    ...address('v'), ...get(VI), ...store,
    // p = p · shrink − (stepSize · mi) / (√vi · rootCorrection2 + eps)
    ...address('p'),
    ...load('p'), ...get(lanes('shrink')), ...MUL,
    ...get(lanes('stepSize')), ...get(MI), ...MUL,
    ...get(VI), ...SQRT, ...get(lanes('rootCorrection2')), ...MUL, ...get(lanes('eps')), ...ADD,
    ...DIV, ...SUB, ...store,
    ...get(I), 0x41, 8, 0x6a, LOCAL_SET, I,
    0x0c, 0, 0x0b, 0x0b, 0x0b
  ]
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 5 + ADAMW_CONSTANTS.length, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, ...ADAMW_CONSTANTS.map(() => 0x7c), 0]),
    // Imports env.memory, shared, without a maximum of its own: limits flag 3 takes the memory's.
    ...section(2, [1, 3, ...[...'env'].map(c => c.charCodeAt(0)), 6, ...[...'memory'].map(c => c.charCodeAt(0)), 2, 3, 0, ...leb(65536)]),
    ...section(3, [1, 0]),
    ...section(7, [1, 1, 'k'.charCodeAt(0), 0, 0]),
    ...section(10, [1, ...leb(body.length), ...body])])
}

let compiled: WebAssembly.Module | undefined
const kernels = new WeakMap<WebAssembly.Memory, AdamWKernel>()

/** The kernel over a shared memory, made once a memory. */
export function adamwKernel (memory: WebAssembly.Memory): AdamWKernel {
  let kernel = kernels.get(memory)
  if (kernel == null) {
    compiled ??= new WebAssembly.Module(module() as Uint8Array<ArrayBuffer>)
    kernel = new WebAssembly.Instance(compiled, { env: { memory } }).exports.k as AdamWKernel
    kernels.set(memory, kernel)
  }
  return kernel
}
