#!/usr/bin/env node
/*
 * Build the federated extension into ../functions_nb/labextension with @jupyterlab/builder,
 * without `jupyter labextension build` (which may try to download core metadata) and without
 * relying on `jupyter` being first on PATH.
 *
 * The core path (JupyterLab's staging directory, whose package.json lists the shared
 * singletons) is found in this order:
 *   1. $JUPYTERLAB_CORE_PATH (a directory holding JupyterLab's core package.json);
 *   2. the `jupyterlab` package of the first Python that imports it, trying
 *      $PYTHON, then `python3` and `python` on PATH, then ../.venv/bin/python.
 * Extra arguments (e.g. --development, --source-map) are passed to the builder.
 */
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const here = path.resolve(__dirname, '..');

function corePath() {
  const fromEnv = process.env.JUPYTERLAB_CORE_PATH;
  if (fromEnv) {
    return fromEnv;
  }
  const candidates = [
    process.env.PYTHON,
    'python3',
    'python',
    path.join(here, '..', '.venv', 'bin', 'python')
  ].filter(Boolean);
  const code =
    'import os, jupyterlab; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))';
  for (const python of candidates) {
    const out = spawnSync(python, ['-c', code], { encoding: 'utf8' });
    if (out.status === 0) {
      const dir = out.stdout.trim();
      if (fs.existsSync(path.join(dir, 'package.json'))) {
        return dir;
      }
    }
  }
  console.error(
    'build-labextension: cannot find JupyterLab; put a Python with jupyterlab on PATH ' +
      'or set JUPYTERLAB_CORE_PATH to its staging directory'
  );
  process.exit(1);
}

const core = corePath();
const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js', {
  paths: [here]
});
console.log(`build-labextension: core path ${core}`);
const result = spawnSync(
  process.execPath,
  [builder, '--core-path', core, ...process.argv.slice(2), here],
  { stdio: 'inherit', cwd: here }
);
process.exit(result.status === null ? 1 : result.status);
