import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { renderNativeOps } from '../../tools/gen-native-types.js';

test('src/torch/native-ops.ts is generated from the built binding (run `npm run gen:native-types`)', () => {
  const committed = readFileSync(new URL('../../../src/torch/native-ops.ts', import.meta.url), 'utf8');
  assert.equal(committed, renderNativeOps());
});
