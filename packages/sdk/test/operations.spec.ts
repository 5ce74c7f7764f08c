import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { operationsOf } from '../src/operations.ts'
import { identifier } from '../src/python.ts'
import type { OpenApiDocument } from '../src/operations.ts'

const route = (summary: string): object => ({ summary, responses: {} })

describe('the operations of an OpenAPI document', () => {
  it('names each by its path, one operation for a route that takes GET and POST alike, and by method where a path has several', () => {
    const document: OpenApiDocument = {
      openapi: '3.0.3',
      paths: {
        '/api/v0/pin/add': { get: route('pin'), post: route('pin') } as any,
        '/api/v1/models/{name}': { get: route('show'), delete: route('remove') } as any,
        '/api/tasks': { get: route('list'), post: route('create') } as any,
        '/api/delete': { delete: route('ollama delete') } as any,
        '/v1/models/{*}': { get: route('openai model') } as any,
        '/api/models': { get: route('models') } as any,
        '/api/v0/models': { post: route('other models') } as any
      }
    }
    assert.deepEqual(operationsOf(document).map(op => [op.method, op.path, op.name]), [
      ['post', '/api/v0/pin/add', 'pin_add'],
      ['get', '/api/v1/models/{name}', 'get_v1_models_by_name'],
      ['delete', '/api/v1/models/{name}', 'delete_v1_models_by_name'],
      ['get', '/api/tasks', 'get_tasks'],
      ['post', '/api/tasks', 'post_tasks'],
      ['delete', '/api/delete', 'delete_delete'],
      ['get', '/v1/models/{*}', 'v1_models_by_path'],
      // Both would be `models`: each takes every word of its path.
      ['get', '/api/models', 'api_models'],
      ['post', '/api/v0/models', 'api_v0_models']
    ])
  })

  it('sorts parameters by where they go and keeps the JSON body and answer', () => {
    const [op] = operationsOf({
      openapi: '3.0.3',
      paths: {
        '/api/tasks/{taskId}/status': {
          put: {
            parameters: [{ name: 'taskId', in: 'path', required: true, schema: { type: 'string' } }, { name: 'local', in: 'query', schema: { type: 'boolean' } }],
            requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', properties: { status: { type: 'string' } } } } } },
            responses: { 200: { content: { 'application/json': { schema: { type: 'object' } } } } }
          }
        }
      }
    })
    assert.deepEqual(op.pathParams.map(p => [p.name, p.required]), [['taskId', true]])
    assert.deepEqual(op.query.map(p => [p.name, p.required]), [['local', false]])
    assert.deepEqual(op.body, { schema: { type: 'object', properties: { status: { type: 'string' } } }, required: true })
    assert.deepEqual(op.response, { type: 'object' })
  })

  it('makes Python identifiers of any parameter name', () => {
    assert.deepEqual(['cid-version', 'from', 'body', '*', '2x', 'model_id'].map(name => identifier(name)), ['cid_version', 'from_', 'body_', 'path', '_2x', 'model_id'])
  })
})
