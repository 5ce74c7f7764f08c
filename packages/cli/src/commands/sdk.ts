/**
 * `sdk --language typescript|python --out DIR`: a typed client of the
 * running daemon's API, generated from the OpenAPI document it serves, so
 * that the client has exactly the routes and schemas of the node it was
 * made from.
 */
import { Option } from 'commander'
import { generateSdk, SDK_LANGUAGES, writeSdk } from '@node-daemon/sdk'
import { apiOf, clientCommand, print, request } from '../command.ts'
import type { ClientOptions } from '../command.ts'
import type { SdkLanguage } from '@node-daemon/sdk'
import type { Command } from 'commander'

async function sdk (opts: ClientOptions & { language: SdkLanguage, out: string, name?: string }): Promise<void> {
  const document = await request(await apiOf(opts), 'GET', '/api/v0/openapi.json')
  const written = await writeSdk(opts.out, await generateSdk(document, { language: opts.language, name: opts.name }))
  // Document 000's generate_sdk answer.
  print(opts, { success: true, language: opts.language, output_path: opts.out, files_generated: written }, () => written)
}

export function sdkCommand (program: Command): void {
  clientCommand(program, 'sdk')
    .description("generate a typed client of the daemon's API from the OpenAPI document it serves")
    .addOption(new Option('--language <language>', 'the client\'s language').choices(SDK_LANGUAGES).makeOptionMandatory())
    .requiredOption('--out <dir>', 'the directory to write it to (made if missing; files of the same names are replaced)')
    .option('--name <name>', 'the package name (default node-daemon-client; node_daemon_client for Python)')
    .action(sdk)
}
