// Lint rules. The workflow-boundary rules (STYLE.md): workflow code imports activities as types only,
// never Node built-ins or non-workflow modules, and uses no path aliases. The API imports no activity module.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'native/build/**', 'coverage/**', '.vmflow/**', '.tools/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'inline-type-imports' },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // Workflow code is bundled and replayed in a deterministic sandbox.
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code cannot use Node built-ins.' })),
          patterns: [
            {
              group: ['../activities', '../activities/*', '../activities/**'],
              allowTypeImports: true,
              message:
                'Workflows import activities as types only (import type) and call them via proxyActivities.',
            },
            {
              group: [
                '../api/**',
                '../api',
                '../entities/**',
                '../entities',
                '../libvirt/**',
                '../libvirt',
                '../worker/**',
                '../worker',
                '../config',
                '@/*',
                '~/*',
              ],
              allowTypeImports: true,
              message: 'Workflow code may import only @temporalio/workflow, its own folder and types.',
            },
            {
              group: [
                'typeorm',
                'mysql2',
                'express',
                'socket.io',
                'pino',
                '@temporalio/client',
                '@temporalio/worker',
                '@temporalio/activity',
              ],
              message: 'Not allowed in workflow code.',
            },
          ],
        },
      ],
    },
  },
  {
    // The API runs in its own process: it shares modules with the worker (src/events, src/networks,
    // src/machines, src/firewall, src/entities), never the worker's activity modules.
    files: ['src/api/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/activities', '**/activities/**'],
              message:
                'The API imports no activity module: move what both need to a shared module (src/events, src/networks, src/machines).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
