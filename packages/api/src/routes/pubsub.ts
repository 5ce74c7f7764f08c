import { base64url } from 'multiformats/bases/base64'
import { Type } from 'typebox'
import { args, option } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { firstPartBytes } from '../multipart.ts'
import { requestSignal, streamLive } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { PubsubMessage } from '@node-daemon/content'
import type { FastifyRequest } from 'fastify'

/** Gossipsub's default message size cap. */
const MAX_MESSAGE_BYTES = 1_048_576
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Kubo's RPC carries topics and payloads as multibase base64url, `u…`. */
function fromRpc (text: string, what: string): Uint8Array {
  try {
    return base64url.decode(text)
  } catch {
    throw new BadRequestError(`${what} must be multibase base64url (u…), as Kubo sends it; got ${JSON.stringify(text)}`)
  }
}

const toRpc = (bytes: Uint8Array): string => base64url.encode(bytes)

/** The topic: Kubo's encoded `arg`, or document 000's plain JSON `topic`; undefined when neither is given. */
function optionalTopicOf (request: FastifyRequest): string | undefined {
  const arg = args(request)[0]
  if (arg != null) return decoder.decode(fromRpc(arg, 'the topic'))
  const plain = option<string>(request, 'topic')
  return typeof plain === 'string' && plain !== '' ? plain : undefined
}

function topicOf (request: FastifyRequest): string {
  const topic = optionalTopicOf(request)
  if (topic == null) throw new BadRequestError('argument "topic" is required')
  return topic
}

function kuboMessage (msg: PubsubMessage): object {
  return { from: msg.from, data: toRpc(msg.data), seqno: toRpc(msg.seqno), topicIDs: [toRpc(encoder.encode(msg.topic))] }
}

const TopicQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Topic, multibase base64url encoded' }))
})

export const pubsubRoutes: Routes = (app, { node, shutdown }) => {
  const topics = node.content.topics

  kuboRoute(app, {
    path: 'pubsub/pub',
    permission: 'swarm',
    tags: ['pubsub'],
    summary: 'Publish: Kubo style (encoded topic, data as a multipart file) or JSON {"topic", "data": base64}',
    schema: { querystring: TopicQuery },
    handler: async (request) => {
      const topic = topicOf(request)
      let data: Uint8Array
      const json = option<string>(request, 'data')
      if (typeof json === 'string' && request.isMultipart() === false) {
        data = Buffer.from(json, 'base64')
      } else {
        data = await firstPartBytes(request, MAX_MESSAGE_BYTES)
      }
      await topics.publish(topic, data)
      return { success: true }
    }
  })

  kuboRoute(app, {
    path: 'pubsub/sub',
    permission: 'swarm',
    tags: ['pubsub'],
    summary: 'Subscribe: NDJSON messages until the client disconnects',
    schema: { querystring: TopicQuery },
    handler: async (request, reply) => {
      const topic = topicOf(request)
      const signal = AbortSignal.any([requestSignal(reply), shutdown])
      const messages = topics.subscribe(topic, { signal })
      await streamLive(reply, (async function * () { for await (const msg of messages) yield kuboMessage(msg) })(), signal)
    }
  })

  kuboRoute(app, {
    path: 'pubsub/ls',
    permission: 'swarm',
    tags: ['pubsub'],
    summary: 'Topics this node is subscribed to',
    handler: async () => {
      const list = topics.topics()
      return { success: true, topics: list, Strings: list.map(t => toRpc(encoder.encode(t))) }
    }
  })

  kuboRoute(app, {
    path: 'pubsub/peers',
    permission: 'swarm',
    tags: ['pubsub'],
    summary: 'Peers subscribed to a topic, or all pubsub peers',
    schema: { querystring: TopicQuery },
    handler: async (request) => {
      const peers = topics.peers(optionalTopicOf(request))
      return { success: true, peers, Strings: peers }
    }
  })

  app.get('/ws/v0/pubsub/:topic', { permission: 'swarm', websocket: true, schema: { tags: ['pubsub'], summary: 'WebSocket: messages of a topic as {"topic", "data": base64, "from"}' } }, (socket, request) => {
    const { topic } = request.params as { topic: string }
    const controller = new AbortController()
    socket.once('close', () => { controller.abort() })
    void (async () => {
      for await (const msg of topics.subscribe(topic, { signal: AbortSignal.any([controller.signal, shutdown]) })) {
        if (socket.readyState !== socket.OPEN) break
        socket.send(JSON.stringify({ topic: msg.topic, data: Buffer.from(msg.data).toString('base64'), from: msg.from, seqno: toRpc(msg.seqno) }))
      }
      if (socket.readyState === socket.OPEN) socket.close(1001, 'the daemon is stopping')
    })()
  })
}
