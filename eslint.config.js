// The project's style: neostandard (standard's rules for flat config) with its TypeScript rules.
import neostandard, { plugins } from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['protocols/*.js', 'protocols/*.d.ts', '**/node_modules/**', 'packages/console/dist/**']
  }),
  {
    files: ['**/*.ts', '**/*.tsx'],
    plugins: { '@typescript-eslint': plugins['typescript-eslint'].plugin },
    rules: {
      // `void promise()` marks a call whose promise is deliberately not awaited.
      'no-void': ['error', { allowAsStatement: true }],
      // Loops here wait for state that callbacks change between awaits, which the rule cannot see.
      'no-unmodified-loop-condition': 'off',
      // `const { a: _a, ...rest } = x` drops a field; `_` names what is deliberately unused.
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', caughtErrors: 'none', ignoreRestSiblings: true, varsIgnorePattern: '^_' }]
    }
  }
]
