import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { learnMerges } from '../src/tokenizer/bpe-merges.ts'

describe('learnMerges', () => {
  it('merges the most frequent pair first and recounts after each merge', () => {
    const { symbols, merges } = learnMerges(new Map([['abab', 3], ['abc', 2], ['bc', 4]]), ['a', 'b', 'c'], 3)
    // ab: 3*2 + 2 = 8 beats bc: 2 + 4 = 6; after it, bc counts 4 and ab-ab 3
    assert.deepEqual(merges, [['a', 'b'], ['b', 'c'], ['ab', 'ab']])
    assert.deepEqual(symbols, ['a', 'b', 'c', 'ab', 'bc', 'abab'])
  })

  it('breaks ties by the smaller ids, first symbol then second', () => {
    const { merges } = learnMerges(new Map([['cb', 1], ['ba', 1], ['bc', 1]]), ['a', 'b', 'c'], 1)
    assert.deepEqual(merges, [['b', 'a']])
  })

  it('merges runs of one symbol left to right without overlap', () => {
    // aaaaa becomes aa aa a: then aa-aa and aa-a count 1 each, and a has the smaller id
    const { merges } = learnMerges(new Map([['aaaaa', 1]]), ['a'], 2)
    assert.deepEqual(merges, [['a', 'a'], ['aa', 'a']])
  })

  it('learns the same merges whatever the order of the words, each a new distinct token', () => {
    let seed = 7
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    for (let trial = 0; trial < 200; trial++) {
      const entries: Array<[string, number]> = []
      for (let w = random(8); w >= 0; w--) {
        let word = ''
        for (let i = random(8); i >= 0; i--) word += 'abcd'[random(4)]
        if (!entries.some(([known]) => known === word)) entries.push([word, 1 + random(5)])
      }
      const learned = learnMerges(new Map(entries), ['a', 'b', 'c', 'd'], 12)
      assert.deepEqual(learnMerges(new Map(entries.reverse()), ['a', 'b', 'c', 'd'], 12), learned)
      assert.equal(new Set(learned.symbols).size, learned.symbols.length)
      assert.deepEqual(learned.merges.map(([first, second]) => first + second), learned.symbols.slice(4))
    }
  })

  it('stops when no pair is left', () => {
    const { symbols, merges } = learnMerges(new Map([['ab', 1], ['c', 7]]), ['a', 'b', 'c'], 10)
    assert.deepEqual(merges, [['a', 'b']])
    assert.equal(symbols.length, 4)
  })

  it('refuses symbols outside the alphabet', () => {
    assert.throws(() => learnMerges(new Map([['az', 1]]), ['a'], 1), { name: 'RangeError' })
  })
})
