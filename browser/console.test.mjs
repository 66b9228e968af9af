// Drives the web console in headless Chromium (Debian's, through
// playwright-core) against a running jetinfer, for the Go test
// TestConsoleInBrowser (internal/app), which starts the stack, passes what
// it needs in the environment and checks the JSON this prints last.
//
// It signs in, runs NER on a text holding HTML and checks that no script
// ran and that the highlighted spans are the API's entities, ranks
// documents holding HTML as the API does, uploads a
// backfill from a file and waits for it to complete, downloads its
// results, replays a dead letter, and saves a screenshot of every page.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('CONSOLE_URL');
const token = env('CONSOLE_TOKEN');
const nerTask = env('CONSOLE_NER_TASK');
const nerText = env('CONSOLE_NER_TEXT');
const rerankTask = env('CONSOLE_RERANK_TASK');
const rerankQuery = env('CONSOLE_RERANK_QUERY');
const rerankDocs = env('CONSOLE_RERANK_DOCS');
const deadJob = env('CONSOLE_DEAD_JOB');
const docs = Number(env('CONSOLE_BACKFILL_DOCS'));
const shots = env('CONSOLE_ARTIFACTS');
const profile = env('CONSOLE_PROFILE');
mkdirSync(shots, { recursive: true });

const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };
const step = (s) => process.stderr.write(`console test: ${s}\n`);

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 860 },
  acceptDownloads: true,
  colorScheme: 'light',
});
const out = {};
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(15000);
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', (d) => {
    // The console's own confirmation is accepted; any other dialog is a
    // script that should not have run.
    if (d.type() === 'confirm' && d.message().startsWith('Cancel backfill')) return d.accept();
    problems.push(`a dialog opened: ${d.type()} ${d.message()}`);
    return d.dismiss();
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`CSP violation: ${m.text()}`);
  });
  const shot = (name) => page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });

  // Sign in.
  step('sign in');
  await page.goto(base + '/ui/');
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[data-testid=tenant]').waitFor();
  out.tenant = await page.locator('[data-testid=tenant]').textContent();
  out.quotaText = await page.locator('[data-testid=identity]').textContent();
  check(await page.evaluate(() => sessionStorage.getItem('jetinfer.token')) === token, 'the token is not in sessionStorage');
  check(await page.evaluate(() => localStorage.length === 0 && document.cookie === ''), 'something was kept beyond the tab');
  await shot('signin');

  // Playground: NER on a text holding markup.
  step('playground');
  await page.goto(base + '/ui/#/playground');
  await page.locator('#task').selectOption(nerTask);
  await page.locator('#text').fill(nerText);
  await page.locator('#run').click();
  await page.locator('[data-testid=entity-text]').waitFor();
  out.paragraphText = await page.locator('[data-testid=entity-text]').evaluate((p) => p.textContent);
  out.marks = await page.locator('[data-testid=entity-text] mark').evaluateAll((ms) => ms.map((m) => ({
    start: Number(m.dataset.start), end: Number(m.dataset.end), type: m.dataset.type, text: m.textContent, title: m.title,
  })));
  out.rawEntities = JSON.parse(await page.locator('[data-testid=raw-json]').evaluate((p) => p.textContent)).result.entities;
  out.timings = await page.locator('[data-testid=timings]').textContent();
  out.injected = await page.evaluate(() => ({
    xss: window.__xss ?? null,
    imgs: document.querySelectorAll('main img').length,
    scripts: document.querySelectorAll('main script').length,
  }));
  await page.locator('details summary').click();
  await shot('playground-ner');
  // A news sample at laptop size, the view docs/console-playground.png shows.
  await page.locator('details summary').click();
  await page.locator('#sample').selectOption('0');
  await page.locator('#run').click();
  await page.locator('[data-testid=entity-text]').getByText('analysts', { exact: false }).waitFor();
  await page.waitForFunction(() => getComputedStyle(document.getElementById('toast')).opacity === '0');
  await page.screenshot({ path: path.join(shots, 'playground-news.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('playground-phone');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot('playground-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.locator('#task').selectOption('sentiment');
  await page.locator('#sample').selectOption('3');
  await page.locator('#run').click();
  await page.locator('[data-testid=labels] li').first().waitFor();
  out.labels = await page.locator('[data-testid=labels] li').count();
  await shot('playground-sentiment');

  // A rerank of documents, one holding markup: ranked as the API ranks
  // them, each as text under its index in the request.
  await page.locator('#task').selectOption(rerankTask);
  await page.locator('#query').fill(rerankQuery);
  await page.locator('#documents').fill(rerankDocs);
  await page.locator('#run').click();
  await page.locator('[data-testid=ranking] li').first().waitFor();
  out.ranked = await page.locator('[data-testid=ranking] li').evaluateAll((ls) => ls.map((l) => ({
    index: Number(l.dataset.index), score: Number(l.dataset.score), text: l.querySelector('.doc').textContent,
  })));
  out.rerankInjected = await page.evaluate(() => ({ xss: window.__xss ?? null, imgs: document.querySelectorAll('main img').length }));
  await shot('playground-rerank');

  // Keyboard focus is visible: a focused control draws an outline.
  await page.locator('#run').focus();
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Tab');
  out.focusOutline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);

  // Backfills: upload a file, watch it complete, download its results.
  step('backfill');
  await page.goto(base + '/ui/#/backfills');
  const lines = [];
  for (let i = 0; i < docs; i++) lines.push(JSON.stringify({ id: `doc-${i}`, text: `Shares of company ${i} <b>rose</b> after strong results.` }));
  lines.splice(3, 0, '{"id":"broken"');
  // One document the model refuses: it dies, and its card counts it by reason.
  lines.push(JSON.stringify({ id: 'too-long', text: 'up '.repeat(600) }));
  await page.locator('#bf-task').selectOption('sentiment');
  await page.locator('#bf-name').fill('console upload');
  await page.locator('#bf-file').setInputFiles({ name: 'news.ndjson', mimeType: 'application/x-ndjson', buffer: Buffer.from(lines.join('\n') + '\n') });
  await page.locator('#bf-start').click();
  await page.locator('#bf-status').getByText('Uploaded to').waitFor();
  out.uploadStatus = await page.locator('#bf-status').textContent();
  const card = page.locator('article.bf').filter({ hasText: 'console upload' });
  await card.and(page.locator('[data-state=completed]')).waitFor({ timeout: 30000 });
  out.backfillId = await card.getAttribute('data-backfill');
  await card.getByText('Dead letters by reason').waitFor({ timeout: 20000 });
  out.backfillCard = await card.textContent();
  await shot('backfills');
  const [download] = await Promise.all([page.waitForEvent('download'), card.getByRole('button', { name: 'Download results' }).click()]);
  const saved = await readFile(await download.path(), 'utf8');
  out.downloadName = download.suggestedFilename();
  out.downloadLines = saved.split('\n').filter(Boolean).map((l) => JSON.parse(l).id).sort();

  // A CSV file of quoted texts spanning lines, larger than one request:
  // the upload must cut it between records, never inside a quoted field.
  // Then cancel it.
  const rows = ['id,text'];
  for (let i = 0; i < 800; i++) rows.push(`c${i},"${'Profits rose, said ""the bank"". '.repeat(22)}\nend."`);
  await page.locator('#bf-name').fill('csv upload');
  await page.locator('#bf-seal').uncheck();
  await page.locator('#bf-file').setInputFiles({ name: 'news.csv', mimeType: 'text/csv', buffer: Buffer.from(rows.join('\n') + '\n') });
  await page.locator('#bf-start').click();
  await page.locator('#bf-status').getByText('Uploaded to').waitFor();
  out.csvStatus = await page.locator('#bf-status').textContent();
  const csvCard = page.locator('article.bf').filter({ hasText: 'csv upload' });
  await csvCard.getByRole('button', { name: 'Cancel' }).click();
  await csvCard.and(page.locator('[data-state=canceled]')).waitFor();
  out.csvBackfillId = await csvCard.getAttribute('data-backfill');

  // Dead letters: replay one.
  step('dead letters');
  await page.goto(base + '/ui/#/dlq');
  const row = page.locator(`tr[data-job="${deadJob}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: 'Replay' }).click();
  await page.locator('#toast').getByText('Replayed 1 of 1').waitFor();
  out.replayed = true;
  await row.getByRole('button', { name: deadJob }).click().catch(() => {});
  await shot('dead-letters');

  // Fleet.
  step('fleet');
  await page.goto(base + '/ui/#/fleet');
  await page.locator('[data-testid=fleet] tbody tr').first().waitFor();
  out.fleet = await page.locator('[data-testid=fleet] tbody th').allTextContents();
  await shot('fleet');

  const origin = new URL(base).origin;
  out.foreignRequests = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
  out.tokenInURL = requests.some((u) => u.includes(token));
} catch (e) {
  problems.push(`${e.message}`);
  try { await ctx.pages()[0]?.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }); } catch { /* none */ }
} finally {
  await ctx.close();
}
out.problems = problems;
process.stdout.write(JSON.stringify(out) + '\n');
