// GraphiQL on the node's GraphQL endpoint: queries and mutations over HTTP,
// subscriptions over its WebSocket. React, ReactDOM and GraphiQL are the
// node's own copies, loaded by the page before this script.
/* global React, ReactDOM, GraphiQL */
const endpoint = new URL('/api/v0/graphql', window.location.href)

const EXAMPLE = `# Document 000's example: node information and pins in one query.
# A node that needs a credential takes it under Headers below:
# {"Authorization": "Bearer <API key or token>"}
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

/** The credential among the header editor's headers: a bearer token or an X-API-Key. */
function credentialOf (headers) {
  let credential
  for (const [name, value] of Object.entries(headers ?? {})) {
    const bearer = /^bearer\s+(\S+)$/i.exec(String(value).trim())
    if (/^authorization$/i.test(name) && bearer != null) credential = bearer[1]
    else if (/^x-api-key$/i.test(name)) credential ??= String(value)
  }
  return credential
}

/**
 * GraphiQL hands the header editor's headers to each call. HTTP requests
 * carry them as they are; a browser's WebSocket sends no headers of its
 * own, so a subscription's URL carries the credential as api_key.
 */
function fetcher (params, options) {
  const subscriptionUrl = new URL(endpoint)
  subscriptionUrl.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:'
  const credential = credentialOf(options?.headers)
  if (credential != null) subscriptionUrl.searchParams.set('api_key', credential)
  return GraphiQL.createFetcher({ url: endpoint.href, subscriptionUrl: subscriptionUrl.href })(params, options)
}

ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, { fetcher, defaultQuery: EXAMPLE }))
