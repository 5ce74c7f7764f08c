/** The bytes are no GGUF file, or one this reader cannot take (a version before 2, a truncated header). */
export class GgufFormatError extends Error {
  static name = 'GgufFormatError'
  name = 'GgufFormatError'
}

/** A model that the converter cannot express in GGUF (an architecture it does not know, a missing weight). */
export class GgufConversionError extends Error {
  static name = 'GgufConversionError'
  name = 'GgufConversionError'
}
