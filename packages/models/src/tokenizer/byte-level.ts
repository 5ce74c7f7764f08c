/**
 * GPT-2's byte-level view of text, exactly as the ByteLevel pre-tokenizer of
 * Hugging Face tokenizers applies it at run time, so that training sees the
 * same pieces that encoding will.
 */

/**
 * GPT-2's pre-tokenization: contractions, letter runs, digit runs and
 * punctuation runs, each with at most one leading space, then whitespace.
 */
export const PRE_TOKENIZE_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu

/**
 * GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for
 * themselves, the other 68 take code points from U+0100 on, so every byte is
 * one visible character and no token contains a space.
 */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table = new Array<string>(256)
  let next = 256
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || byte >= 0xae
    table[byte] = String.fromCharCode(printable ? byte : next++)
  }
  return table
})()

/** The 256 byte symbols in code point order, which is also GPT-2's vocabulary order. */
export const BYTE_ALPHABET: readonly string[] = [...BYTE_TO_UNICODE].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0))

const encoder = new TextEncoder()

/** The UTF-8 bytes of `text`, each written as its byte-level symbol. */
export function toByteLevel (text: string): string {
  let symbols = ''
  for (const byte of encoder.encode(text)) symbols += BYTE_TO_UNICODE[byte]
  return symbols
}

/** Splits `text` into GPT-2 pre-tokens. */
export function preTokenize (text: string): string[] {
  return text.match(PRE_TOKENIZE_PATTERN) ?? []
}
