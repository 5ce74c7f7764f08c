import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseModelfile, quoteModelfileValue, renderModelfile } from '../src/modelfile.ts'
import { asCID, fullName } from '../src/names.ts'

describe('Modelfile', () => {
  it("reads FROM, PARAMETER, and TEMPLATE and SYSTEM over several lines, as Ollama's", () => {
    const parsed = parseModelfile([
      '# a comment',
      'FROM tiny-gpt',
      'PARAMETER temperature 0.2',
      'PARAMETER num_predict 64',
      'PARAMETER stop "<|im_end|>"',
      'PARAMETER stop END',
      'SYSTEM """You write',
      'as Jane Austen."""',
      'TEMPLATE "{{ .System }} {{ .Prompt }}"'
    ].join('\n'))
    assert.deepEqual(parsed, {
      from: 'tiny-gpt',
      options: { temperature: 0.2, num_predict: 64, stop: ['<|im_end|>', 'END'] },
      system: 'You write\nas Jane Austen.',
      template: '{{ .System }} {{ .Prompt }}'
    })
    assert.deepEqual(parseModelfile(renderModelfile(parsed)), parsed, 'what /api/show renders reads back the same')
  })

  it("takes the sampler's parameters and the context's", () => {
    const parameters = { min_p: 0.05, typical_p: 0.7, tfs_z: 0.9, presence_penalty: 1.5, frequency_penalty: 1, mirostat: 2, mirostat_tau: 4, mirostat_eta: 0.2, num_ctx: 4096, num_keep: 5 }
    const parsed = parseModelfile(['FROM x', ...Object.entries(parameters).map(([k, v]) => `PARAMETER ${k} ${v}`)].join('\n'))
    assert.deepEqual(parsed.options, parameters)
  })

  it('refuses what it cannot honour, naming it', () => {
    assert.throws(() => parseModelfile('PARAMETER temperature 1'), { name: 'InvalidModelfileError', message: /FROM/ })
    assert.throws(() => parseModelfile('FROM x\nADAPTER ./lora.bin'), { name: 'InvalidModelfileError', message: /ADAPTER/ })
    assert.throws(() => parseModelfile('FROM x\nPARAMETER use_mmap true'), { message: /use_mmap/ })
    assert.throws(() => parseModelfile('FROM x\nPARAMETER mirostat 1.5'), { message: /integer/ })
    assert.throws(() => parseModelfile('FROM x\nPARAMETER top_k 1.5'), { message: /integer/ })
    assert.throws(() => parseModelfile('FROM x\nSYSTEM """never closed'), { message: /unterminated/ })
    assert.throws(() => parseModelfile('FROM x\nPARAMETER'), { name: 'InvalidModelfileError', message: /needs a name/ })
  })

  it('takes a triple-quoted parameter that spans lines, and writes one back', () => {
    const parsed = parseModelfile('FROM x\nPARAMETER stop """a\nb"""\nPARAMETER stop "c d"')
    assert.deepEqual(parsed.options.stop, ['a\nb', 'c d'])
    assert.deepEqual(parseModelfile(renderModelfile(parsed)), parsed)
    assert.equal(quoteModelfileValue('say "hi" twice'), '"""say "hi" twice"""')
    assert.throws(() => quoteModelfileValue('ends with "'), { name: 'InvalidModelfileError' })
  })
})

describe('model names', () => {
  it('adds the latest tag, as Ollama does, and refuses malformed names', () => {
    assert.equal(fullName('tiny-gpt'), 'tiny-gpt:latest')
    assert.equal(fullName('library/tiny-gpt:v2'), 'library/tiny-gpt:v2')
    assert.throws(() => fullName('not a name'), { name: 'InvalidModelfileError' })
    assert.throws(() => fullName(':tag'), { name: 'InvalidModelfileError' })
  })

  it('keeps PARAMETER dtype as the model\'s variant, apart from the sampling options, and refuses an unknown one', () => {
    const parsed = parseModelfile('FROM tiny-gpt\nPARAMETER dtype "q4"\nPARAMETER temperature 0.5')
    assert.equal(parsed.dtype, 'q4')
    assert.deepEqual(parsed.options, { temperature: 0.5 })
    assert.match(renderModelfile(parsed), /^PARAMETER dtype q4$/m)
    assert.throws(() => parseModelfile('FROM tiny-gpt\nPARAMETER dtype fp8'), { name: 'InvalidModelfileError', message: /fp8" is none of fp32, fp16/ })
  })

  it('tells CIDs from names', () => {
    assert.equal(asCID('QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o')?.version, 0)
    assert.equal(asCID('tiny-gpt'), undefined)
  })
})
