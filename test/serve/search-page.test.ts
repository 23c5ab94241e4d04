// The search page in headless Chromium (Debian's `chromium`, driven by playwright-core): a text query and an image
// query give ranked results with thumbnails and scores. A screenshot is saved and its path printed.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { type BrowserContext, chromium } from 'playwright-core';

import { Embedder } from '../../src/embed/index.js';
import type { MocaServer } from '../../src/serve/index.js';
import { buildIndex, folderSource } from '../../src/search/index.js';
import { PIXELS, png, startServer, tempDir, tinyModel } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../test-artifacts/search-page.png', import.meta.url));

// Browser-side functions are serialised by playwright and run in the page; this package's TypeScript has no DOM
// types, so the few members used are typed here. (The page's CSP forbids eval, so no string expressions.)
interface BrowserElement {
  textContent: string | null;
  naturalWidth: number;
}
interface BrowserDocument {
  getElementById(id: string): BrowserElement | null;
  querySelector(selector: string): BrowserElement | null;
  querySelectorAll(selector: string): ArrayLike<BrowserElement>;
}
type Page = { document: BrowserDocument };
const ALL_THUMBNAILS_LOADED = (): boolean =>
  Array.from((globalThis as unknown as Page).document.querySelectorAll('#results .thumb img')).every(
    (i) => i.naturalWidth > 0,
  );

const tmp = tempDir('moca-page-');
let server: MocaServer;
let url = '';
let context: BrowserContext;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)`);
  const model = await tinyModel(tmp.dir);
  const pages = path.join(tmp.dir, 'pages');
  mkdirSync(pages);
  for (let i = 0; i < 8; i++) writeFileSync(path.join(pages, `page-${i}.png`), await png(84 + 14 * i, 84, 20 + i));
  const embedder = await Embedder.load(model, { ...PIXELS, threads: 1 });
  await buildIndex(embedder, folderSource(pages), path.join(tmp.dir, 'index'), { batchSize: 4 });
  ({ server, url } = await startServer({ modelDir: model, indexDir: path.join(tmp.dir, 'index') }));
  context = await chromium.launchPersistentContext(path.join(tmp.dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1100, height: 760 },
  });
});

after(async () => {
  await context?.close();
  await server?.close();
  tmp.remove();
});

test('search page: text and image queries show ranked results with thumbnails and scores', async (t) => {
  const page = await context.newPage();
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  await page.goto(`${url}/`);
  assert.match(await page.title(), /moca search/);
  await page.waitForFunction(() =>
    /8 items/.test((globalThis as unknown as Page).document.getElementById('subtitle')?.textContent ?? ''),
  );

  // Text query, 5 results.
  await page.fill('#query', 'a scanned page');
  await page.selectOption('#k', '5');
  await page.click('#go');
  await page.waitForSelector('#results li.result >> nth=4');
  const textResults = await page.$$eval('#results li.result', (lis) =>
    lis.map((li) => ({
      id: li.querySelector('.id')?.textContent ?? '',
      score: Number(li.querySelector('.score')?.textContent),
    })),
  );
  assert.equal(textResults.length, 5);
  for (let i = 1; i < textResults.length; i++) assert.ok(textResults[i - 1]!.score >= textResults[i]!.score);
  assert.ok(textResults.every((r) => /^page-\d\.png$/.test(r.id)));
  await page.waitForFunction(ALL_THUMBNAILS_LOADED);
  assert.match((await page.textContent('#status')) ?? '', /5 results in \d+ ms/);

  // Image query (as if dropped / chosen): the same image comes first with cosine ≈ 1.
  await page.fill('#query', '');
  await page.setInputFiles('#file', path.join(tmp.dir, 'pages', 'page-3.png'));
  await page.waitForSelector('#drop img');
  await page.click('#go');
  await page.waitForFunction(
    () =>
      (globalThis as unknown as Page).document.querySelector('#results li.result .id')?.textContent === 'page-3.png',
  );
  const top = await page.$eval('#results li.result', (li) => Number(li.querySelector('.score')?.textContent));
  assert.ok(top > 0.999, `top score ${top}`);
  await page.waitForFunction(ALL_THUMBNAILS_LOADED);

  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.ok(statSync(SCREENSHOT).size > 1000);
  t.diagnostic(`screenshot: ${SCREENSHOT}`);

  // Everything came from the server itself (no external assets); no script errors.
  assert.ok(
    requests.every((u) => u.startsWith(url) || u.startsWith('data:')),
    requests.join('\n'),
  );
  assert.deepEqual(pageErrors, []);

  // An empty query is refused on the page without a request.
  const before = requests.length;
  await page.click('#clear');
  await page.click('#go');
  assert.match((await page.textContent('#status')) ?? '', /Type a query or drop an image/);
  assert.equal(requests.length, before);
});
