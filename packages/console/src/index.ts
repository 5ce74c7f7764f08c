/** The web console: where its built files are, for the API to serve. */
export {}
