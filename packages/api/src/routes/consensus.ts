import { Type } from 'typebox'
import { consensusJson, decisionJson } from '../cluster-views.ts'
import { BadRequestError } from '../errors.ts'
import { registeredModel } from '../models.ts'
import { local, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const VoteBody = Type.Object({
  model_id: Type.String({ minLength: 1, description: 'Model id; a bare name means name:latest, as in Ollama' }),
  model_cid: Type.Optional(Type.String({ description: 'CID of the new version' })),
  model_hash: Type.Optional(Type.String({ description: "Document 003's name for model_cid" })),
  expected_version: Type.Optional(Type.Integer({ minimum: 0, description: 'Rejected (409, code 1003) unless this is still the current version' }))
})

const HistoryQuery = Type.Object({
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'Decisions at or after this Raft index' })),
  limit: Type.Optional(Type.Integer({ minimum: 1 })),
  op: Type.Optional(Type.String({ description: 'Only decisions of this operation' })),
  local
})

/** Document 003's consensus routes over the cluster's Raft group. */
export const consensusRoutes: Routes = (app, { node }) => {
  app.get('/api/v1/consensus/status', {
    permission: 'cluster:read',
    schema: { tags: ['consensus'], summary: "Raft: the leader's peer id, term, commit and applied index, role, voters and learners" }
  }, async () => {
    const status = node.cluster.status()
    return { node_id: node.peerId, is_leader: status.role === 'leader', ...consensusJson(status) }
  })

  app.post('/api/v1/consensus/vote', {
    permission: 'cluster:admin',
    schema: { body: VoteBody, tags: ['consensus'], summary: 'Propose a new version of a model; the cluster commits it or rejects it' }
  }, async (request, reply) => {
    const body = request.body as Static<typeof VoteBody>
    const cid = body.model_cid ?? body.model_hash
    if (cid == null) throw new BadRequestError('model_cid (or model_hash) is required')
    const signal = requestSignal(reply)
    const { modelId } = await registeredModel(node.cluster, body.model_id, { signal })
    const model = await node.cluster.updateModel(modelId, cid, { expectedVersion: body.expected_version, signal })
    return { success: true, accepted: true, model_id: model.modelId, model_cid: model.modelCID, version: model.version, timestamp: model.timestamp }
  })

  app.get('/api/v1/consensus/history', {
    permission: 'cluster:read',
    schema: { querystring: HistoryQuery, tags: ['consensus'], summary: 'Committed decisions with term, index, time and proposer' }
  }, async (request, reply) => {
    const { since, limit, op } = request.query as Static<typeof HistoryQuery>
    const decisions = await node.cluster.history({ since, limit, op }, readOptions(reply))
    return { decisions: decisions.map(decisionJson), count: decisions.length }
  })
}
