// The GraphQL playground: queries and mutations POSTed to the endpoint,
// subscriptions over its WebSocket (graphql-transport-ws), and the schema
// read by introspection. Nothing is loaded from anywhere but the node.
const ENDPOINT = new URL('/api/v0/graphql', window.location.href)
const $ = (id) => document.getElementById(id)
const query = $('query')
const variables = $('variables')
const credential = $('credential')
const result = $('result')
const status = $('status')
let socket

const EXAMPLE = `# Document 000's example: node information and pins in one query
query {
  node {
    id
    version
    addresses
  }
  pins {
    cid
    type
    size
  }
}
`

query.value = sessionStorage.getItem('graphql-query') ?? EXAMPLE
variables.value = sessionStorage.getItem('graphql-variables') ?? ''
credential.value = sessionStorage.getItem('graphql-credential') ?? ''

function show (value) {
  result.textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2)
}

function parsedVariables () {
  const text = variables.value.trim()
  return text === '' ? {} : JSON.parse(text)
}

async function post (body) {
  const headers = { 'content-type': 'application/json' }
  if (credential.value !== '') headers.authorization = `Bearer ${credential.value}`
  const res = await fetch(ENDPOINT, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() }
}

/** Whether the document's first operation is a subscription (comments skipped). */
function isSubscription (text) {
  return /^subscription\b/.test(text.replace(/#[^\n]*/g, '').trim())
}

function subscribe (text, vars) {
  stop()
  const url = new URL(ENDPOINT)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  // A browser's WebSocket sends no headers of its own: the credential goes as api_key.
  if (credential.value !== '') url.searchParams.set('api_key', credential.value)
  const ws = new WebSocket(url, 'graphql-transport-ws')
  socket = ws
  const lines = []
  $('stop').disabled = false
  status.textContent = 'subscribing…'
  ws.onopen = () => { ws.send(JSON.stringify({ type: 'connection_init' })) }
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data)
    if (data.type === 'connection_ack') {
      ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: text, variables: vars } }))
      status.textContent = 'subscribed'
    } else if (data.type === 'next' || data.type === 'error') {
      lines.push(JSON.stringify(data.payload, null, 2))
      show(lines.join('\n'))
    } else if (data.type === 'complete') {
      stop()
    }
  }
  ws.onclose = (event) => {
    if (socket === ws) stop()
    if (event.code !== 1000 && event.code !== 1005) status.textContent = `closed (${event.code} ${event.reason})`
  }
}

function stop () {
  if (socket != null) {
    const ws = socket
    socket = undefined
    ws.close(1000)
  }
  $('stop').disabled = true
  status.textContent = ''
}

async function run () {
  sessionStorage.setItem('graphql-query', query.value)
  sessionStorage.setItem('graphql-variables', variables.value)
  sessionStorage.setItem('graphql-credential', credential.value)
  let vars
  try {
    vars = parsedVariables()
  } catch (err) {
    show(`The variables are not JSON: ${err.message}`)
    return
  }
  if (isSubscription(query.value)) {
    subscribe(query.value, vars)
    return
  }
  status.textContent = 'running…'
  try {
    const { status: code, body } = await post({ query: query.value, variables: vars })
    show(body)
    status.textContent = `HTTP ${code}`
  } catch (err) {
    show(`The request failed: ${err.message}`)
    status.textContent = ''
  }
}

const INTROSPECTION = `{ __schema { types { name kind description
  fields { name description args { name type { ...T } } type { ...T } }
  inputFields { name type { ...T } } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }`

/** A type reference as SDL writes it: [Name!]! */
function typeName (t) {
  if (t.kind === 'NON_NULL') return `${typeName(t.ofType)}!`
  if (t.kind === 'LIST') return `[${typeName(t.ofType)}]`
  return t.name
}

async function schema () {
  const { body } = await post({ query: INTROSPECTION })
  if (body.data == null) {
    $('types').textContent = JSON.stringify(body.errors, null, 2)
    return
  }
  const types = body.data.__schema.types.filter(t => !t.name.startsWith('__') && (t.fields != null || t.inputFields != null))
  // The roots first, then the rest by name.
  const order = (t) => ['Query', 'Mutation', 'Subscription'].indexOf(t.name) >>> 0
  types.sort((a, b) => order(a) - order(b) || a.name.localeCompare(b.name))
  $('types').textContent = types.map(t => {
    const fields = (t.fields ?? t.inputFields).map(f => {
      const args = (f.args ?? []).map(a => `${a.name}: ${typeName(a.type)}`).join(', ')
      return `  ${f.name}${args === '' ? '' : `(${args})`}: ${typeName(f.type)}`
    })
    return `${t.kind === 'INPUT_OBJECT' ? 'input' : 'type'} ${t.name} {\n${fields.join('\n')}\n}`
  }).join('\n\n')
}

$('run').addEventListener('click', run)
$('stop').addEventListener('click', stop)
$('schema').addEventListener('click', () => { schema().catch((err) => { $('types').textContent = `The schema could not be read: ${err.message}` }) })
document.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault()
    run()
  }
})
