import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { requestDeadline } from '../src/stream.ts'
import type { FastifyRequest } from 'fastify'

const withTimeout = (timeout: string): FastifyRequest => ({ query: { timeout } }) as unknown as FastifyRequest

describe("Kubo's timeout option", () => {
  it('takes fractions of a ms and durations below one, which timers refuse, and runs out', async () => {
    for (const timeout of ['1.5ms', '10ns', '1us']) {
      const signal = requestDeadline(withTimeout(timeout))
      await sleep(20)
      assert.equal(signal?.aborted, true, timeout)
    }
  })

  it('takes durations past what a timer holds as no deadline soon, not one at once', async () => {
    for (const timeout of ['600h', '100000h']) {
      const signal = requestDeadline(withTimeout(timeout))
      await sleep(20)
      assert.equal(signal?.aborted, false, timeout)
    }
  })
})
