/**
 * `completion bash|zsh|fish`: a completion script made from the command tree
 * itself, so that every verb and option added to the program completes
 * without a word list to keep up to date. Each script finds the command path
 * typed so far (skipping options and their values), then offers that
 * command's subcommands, its options after a `-`, an option's choices, or
 * files.
 */
/* eslint-disable no-template-curly-in-string -- the strings are shell code, whose ${...} are parameter expansions */
import { Argument } from 'commander'
import type { Command, Option } from 'commander'

interface Node {
  /** The words that lead to this command, e.g. `train status`; empty for the program. */
  path: string
  commands: Array<{ name: string, description: string }>
  options: Array<{ flags: string[], description: string, value: boolean, choices?: readonly string[] }>
}

/** One line of a description, short enough for a completion menu. */
function brief (text: string): string {
  const line = text.split('\n')[0]
  return line.length > 80 ? `${line.slice(0, 77)}...` : line
}

function optionOf (option: Option): Node['options'][number] {
  return {
    flags: [option.short, option.long].filter((f): f is string => f != null),
    description: brief(option.description),
    value: option.required || option.optional,
    choices: option.argChoices
  }
}

const join = (path: string, name: string): string => path === '' ? name : `${path} ${name}`

/** Every command of the tree under `root`, as `--help` lists them; an alias leads where its command does. */
function walk (root: Command): Node[] {
  const nodes: Node[] = []
  const visit = (cmd: Command, path: string): void => {
    const help = cmd.createHelp()
    const commands = help.visibleCommands(cmd)
    nodes.push({
      path,
      commands: commands.flatMap(c => [c.name(), ...c.aliases()].map(name => ({ name, description: brief(c.description()) }))),
      options: help.visibleOptions(cmd).map(optionOf)
    })
    for (const c of commands) for (const name of [c.name(), ...c.aliases()]) visit(c, join(path, name))
  }
  visit(root, '')
  return nodes
}

/** Single-quoted for sh and zsh. */
const sq = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`
/** Single-quoted for fish, where \ and ' are escaped inside quotes. */
const fq = (s: string): string => `'${s.replace(/[\\']/g, c => `\\${c}`)}'`

/** The flags that take a value, and the choices of those that have them, across the tree. */
function valueFlags (nodes: Node[]): { flags: string[], choices: Map<string, readonly string[]> } {
  const flags = new Set<string>()
  const choices = new Map<string, readonly string[]>()
  for (const o of nodes.flatMap(n => n.options).filter(o => o.value)) {
    for (const f of o.flags) {
      flags.add(f)
      if (o.choices != null && !choices.has(f)) choices.set(f, o.choices)
    }
  }
  return { flags: [...flags].sort(), choices }
}

/** The shell loop that walks the typed words to the command path: shared by bash and zsh, which differ only in how arrays are indexed. */
function pathLoop (nodes: Node[], flags: string[], first: string, last: string, word: string): string[] {
  const paths = nodes.filter(n => n.path !== '').map(n => sq(n.path))
  return [
    `  for ((i = ${first}; i < ${last}; i++)); do`,
    `    word=${word}`,
    '    case "$word" in',
    ...(flags.length > 0 ? [`      ${flags.join('|')}) ((i++)); continue ;;`] : []),
    '      -*) continue ;;',
    '    esac',
    '    case "${cmdpath:+$cmdpath }$word" in',
    ...(paths.length > 0 ? [`      ${paths.join('|')}) cmdpath="\${cmdpath:+$cmdpath }$word" ;;`] : []),
    '    esac',
    '  done'
  ]
}

function bash (bin: string, fn: string, nodes: Node[]): string {
  const { flags, choices } = valueFlags(nodes)
  const words = (n: Node, options: boolean): string => sq((options ? n.options.flatMap(o => o.flags) : n.commands.map(c => c.name)).join(' '))
  return [
    `# ${bin} completion for bash: eval "$(${bin} completion bash)", e.g. in ~/.bashrc`,
    `${fn} () {`,
    '  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmdpath= word i',
    ...pathLoop(nodes, flags, '1', 'COMP_CWORD', '${COMP_WORDS[i]}'),
    '  case "$prev" in',
    ...[...choices].map(([flag, values]) => `    ${flag}) COMPREPLY=($(compgen -W ${sq(values.join(' '))} -- "$cur")); return ;;`),
    ...(flags.length > 0 ? [`    ${flags.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`] : []),
    '  esac',
    '  local options= commands=',
    '  case "$cmdpath" in',
    ...nodes.map(n => `    ${sq(n.path)}) options=${words(n, true)}; commands=${words(n, false)} ;;`),
    '  esac',
    '  if [[ $cur == -* ]]; then',
    '    COMPREPLY=($(compgen -W "$options" -- "$cur"))',
    '  elif [[ -n $commands ]]; then',
    '    COMPREPLY=($(compgen -W "$commands" -- "$cur"))',
    '  else',
    '    COMPREPLY=($(compgen -f -- "$cur"))',
    '  fi',
    '}',
    `complete -o filenames -F ${fn} ${bin}`,
    ''
  ].join('\n')
}

function zsh (bin: string, fn: string, nodes: Node[]): string {
  const { flags, choices } = valueFlags(nodes)
  const entries = (items: Array<{ name: string, description: string }>): string => items.map(i => sq(`${i.name}:${i.description}`)).join(' ')
  return [
    `#compdef ${bin}`,
    `# ${bin} completion for zsh: source <(${bin} completion zsh), after compinit`,
    `${fn} () {`,
    '  local cmdpath= word i',
    '  local -a entries',
    ...pathLoop(nodes, flags, '2', 'CURRENT', '${words[i]}'),
    '  case "${words[CURRENT-1]}" in',
    ...[...choices].map(([flag, values]) => `    ${flag}) compadd -- ${values.map(sq).join(' ')}; return ;;`),
    ...(flags.length > 0 ? [`    ${flags.join('|')}) _files; return ;;`] : []),
    '  esac',
    '  if [[ $PREFIX == -* ]]; then',
    '    case "$cmdpath" in',
    ...nodes.map(n => `      ${sq(n.path)}) entries=(${entries(n.options.flatMap(o => o.flags.map(name => ({ name, description: o.description }))))}) ;;`),
    '    esac',
    '  else',
    '    case "$cmdpath" in',
    ...nodes.filter(n => n.commands.length > 0).map(n => `      ${sq(n.path)}) entries=(${entries(n.commands)}) ;;`),
    '      *) _files; return ;;',
    '    esac',
    '  fi',
    `  _describe ${sq(bin)} entries`,
    '}',
    `compdef ${fn} ${bin}`,
    ''
  ].join('\n')
}

function fish (bin: string, fn: string, nodes: Node[]): string {
  const { flags } = valueFlags(nodes)
  const at = (n: Node): string => `-n ${fq(`${fn}_at ${sq(n.path)}`)}`
  return [
    `# ${bin} completion for fish: ${bin} completion fish > ~/.config/fish/completions/${bin}.fish`,
    `set -g ${fn}_paths ${nodes.filter(n => n.path !== '').map(n => fq(n.path)).join(' ')}`,
    `function ${fn}_path`,
    '  set -l cmdpath ""',
    '  set -l skip 0',
    '  for word in (commandline -opc)[2..-1]',
    '    if test $skip = 1',
    '      set skip 0',
    '      continue',
    '    end',
    '    switch $word',
    ...(flags.length > 0 ? [`      case ${flags.map(fq).join(' ')}`, '        set skip 1', '        continue'] : []),
    "      case '-*'",
    '        continue',
    '    end',
    '    set -l next (string trim -- "$cmdpath $word")',
    `    if contains -- $next $${fn}_paths`,
    '      set cmdpath $next',
    '    end',
    '  end',
    '  echo $cmdpath',
    'end',
    `function ${fn}_at`,
    `  set -l cmdpath (${fn}_path)`,
    '  test "$cmdpath" = "$argv[1]"',
    'end',
    `complete -c ${bin} -f`,
    ...nodes.flatMap(n => [
      ...n.commands.map(c => `complete -c ${bin} ${at(n)} -a ${fq(c.name)} -d ${fq(c.description)}`),
      ...n.options.map(o => [
        `complete -c ${bin} ${at(n)}`,
        ...o.flags.map(f => f.startsWith('--') ? `-l ${fq(f.slice(2))}` : `-s ${fq(f.slice(1))}`),
        o.choices != null ? `-x -a ${fq(o.choices.join(' '))}` : o.value ? '-r -F' : '',
        `-d ${fq(o.description)}`
      ].filter(p => p !== '').join(' ')),
      // A command without subcommands takes arguments, often paths.
      ...(n.commands.length === 0 ? [`complete -c ${bin} ${at(n)} -F`] : [])
    ]),
    ''
  ].join('\n')
}

const SHELLS = { bash, zsh, fish }

/** Adds `completion <shell>` to `program`. */
export function completionCommand (program: Command): void {
  program.command('completion')
    .description('print a shell completion script: eval "$(node-daemon completion bash)"; zsh and fish alike')
    .addArgument(new Argument('<shell>').choices(Object.keys(SHELLS)))
    .action((shell: keyof typeof SHELLS) => {
      const bin = program.name()
      process.stdout.write(SHELLS[shell](bin, `_${bin.replace(/\W/g, '_')}`, walk(program)))
    })
}
