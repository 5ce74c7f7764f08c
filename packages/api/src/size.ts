/**
 * Sizes for people. Its own module, with no imports, so that the command
 * line prints sizes as the API does without loading the API.
 */

/** Sizes as Ollama prints them (document 002's `total_size`): decimal units, one decimal. */
export function humanSize (bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB']
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return unit === 0 ? `${bytes}B` : `${Math.round(value * 10) / 10}${units[unit]}`
}
