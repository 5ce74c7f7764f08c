/** A setting from a flag, an env var or a YAML file has a bad value. */
export class ConfigError extends Error {
  static name = 'ConfigError'
  name = 'ConfigError'
}

/** The repo is held by another running daemon, or is not a node-daemon repo. */
export class RepoError extends Error {
  static name = 'RepoError'
  name = 'RepoError'
}

/** A diag/profile asked for while another is being collected. */
export class ProfileBusyError extends Error {
  static name = 'ProfileBusyError'
  name = 'ProfileBusyError'
}
