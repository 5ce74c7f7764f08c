/**
 * Errors of search, each with a stable `name` that the API maps to an HTTP
 * status. Collections that do not exist or exist already are the cluster's
 * errors (CollectionNotFoundError, CollectionExistsError).
 */

/** A query, filter or indexing request that cannot be run as given: a bad field, a vector of the wrong size. */
export class InvalidSearchRequestError extends Error {
  static name = 'InvalidSearchRequestError'
  name = 'InvalidSearchRequestError'
}

/** A document whose format has no text to extract: binary data, a broken PDF. */
export class UnsupportedDocumentError extends Error {
  static name = 'UnsupportedDocumentError'
  name = 'UnsupportedDocumentError'
}

/** No indexing job of this id on this node. */
export class IndexJobNotFoundError extends Error {
  static name = 'IndexJobNotFoundError'
  name = 'IndexJobNotFoundError'
}
