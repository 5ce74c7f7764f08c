/**
 * Constrained decoding, the way llama.cpp grammars, Outlines and XGrammar do
 * it: a JSON Schema, free-form JSON, or a composition of literals and
 * schemas is compiled into an automaton over the model's token vocabulary,
 * and at every decoding step the logits of tokens that cannot continue a
 * valid output are set to -Infinity, so that the output always parses and
 * validates, on any model — and, given a token budget, completes within it.
 * Output is compact JSON (no whitespace). Free-form nesting and recursive
 * $ref are bounded at MAX_DEPTH (32) levels.
 */
export { compileGrammar, CompiledGrammar, Matcher, TokenMask } from './grammar.ts'
export type { GrammarSpec } from './grammar.ts'
export { checkSchema } from './schema.ts'
export { UnsupportedSchemaError, UnsatisfiableGrammarError } from './errors.ts'
export { vocabularyFromTokenizer } from './vocabulary.ts'
export type { Vocabulary } from './vocabulary.ts'
export { MAX_DEPTH } from './automaton.ts'
