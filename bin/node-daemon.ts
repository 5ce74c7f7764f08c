#!/usr/bin/env node
import { main } from '@node-daemon/cli'

await main(process.argv)
