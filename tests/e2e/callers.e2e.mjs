// What the calls page shows for each call's caller (issue 13, item 2), driven by
// tests/people_counts_and_callers.rs against the real `cdrbox run` with a simulated PBX that made
// a known set of calls, some with a withheld number (`"Anonymous" <>` and `"" <>`):
//   CDRBOX_BASE     http://127.0.0.1:PORT of the box (a password is set: CDRBOX_PASS)
//   CDRBOX_CALLS    how many calls the harness expects on the page (all of them fit one page)
//   CDRBOX_RESULTS  where to write {today: the status page's Today card, rows: [{name,
//                   number}], totalText, heads, downloads: [{locale, filename, text}]}
//   E2E_SCREENSHOTS directory for the screenshots (1366×768 and 390×844)
// This script only reads what a person sees: the Caller and From cells of every call, and the
// excel file the "Today" button's view downloads in an English and a German browser (the
// separator follows the locale's decimal mark). The harness compares it with the API and the
// simulator's bytes. No sideways scrolling at 390 px. Any page error fails.
import { readFileSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { fail, reportFailure, until } from './lib.mjs';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const base = env('CDRBOX_BASE'), PASS = env('CDRBOX_PASS'), CALLS = Number(env('CDRBOX_CALLS'));
const shots = process.env.E2E_SCREENSHOTS;

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  const errors = [];
  // A logged-in page in a browser of `locale`.
  const open = async (locale) => {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/display\.png|40[0-9]|Failed to load resource/.test(m.text())) errors.push('console: ' + m.text()); });
    await page.goto(base + '/');
    await page.waitForURL(/\/login(#.*)?$/);
    await page.fill('#login-password', PASS);
    await Promise.all([page.waitForURL(base + '/'), page.click('#login button[type=submit]')]);
    return page;
  };
  const allCalls = async (page) => {
    const calls = page.locator('#calls tbody tr.call');
    await until(CALLS + ' calls on the page', async () => (await calls.count()) === CALLS, 30000);
    return calls;
  };
  try {
    const page = await open('en-US');
    // The status page's "Today" card, as "8 calls", "5 answered calls", "3 missed calls".
    await page.goto(base + '/#status');
    const kpis = page.locator('#today .kpi');
    await until('the Today card', async () => (await kpis.count()) === 3);
    const today = await kpis.evaluateAll((els) => els.map((e) => e.querySelector('b').textContent + ' ' + e.querySelector('span').textContent));
    if (shots) await page.screenshot({ path: shots + '/status-1366.png' });
    await page.goto(base + '/#calls?limit=100');
    const calls = await allCalls(page);
    // The columns by their header, so a reordered table still reads the right cells.
    const heads = (await page.locator('#calls thead th').allTextContents()).map((t) => t.trim());
    const col = (name) => { const i = heads.findIndex((h) => h.startsWith(name)); if (i < 0) fail('no column ' + name + ' in ' + heads.join(' | ')); return i; };
    const nameCol = col('Caller'), numberCol = col('From');
    const rows = [];
    for (let i = 0; i < CALLS; i++) {
      const cells = await calls.nth(i).locator('td').allTextContents();
      rows.push({ name: cells[nameCol].trim(), number: cells[numberCol].trim() });
    }
    const totalText = ((await page.textContent('#calls-total')) || '').trim();
    if (shots) await page.screenshot({ path: shots + '/callers-1366.png' });
    await page.setViewportSize({ width: 390, height: 844 });
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (over > 0) fail('the calls page is ' + over + ' px wider than a 390 px window');
    if (shots) await page.screenshot({ path: shots + '/callers-390.png', fullPage: true });
    console.log('ok: read ' + rows.length + ' calls (' + totalText + ')');

    // Today's calls as the excel file, from an English and a German browser.
    const downloads = [];
    for (const [locale, p] of [['en-US', page], ['de-DE', await open('de-DE')]]) {
      await p.setViewportSize({ width: 1366, height: 768 });
      await p.goto(base + '/#calls');
      await p.click('#calls-ranges button[data-range=today]');
      await until('the Today range in the address', async () => /from=/.test(await p.evaluate(() => location.hash)));
      // The links are redrawn with the answer to the new filter: click the Today one.
      const link = p.locator('#downloads a:text("CSV excel")');
      await until('the download link of the Today range', async () => /from=/.test((await link.getAttribute('href').catch(() => '')) || ''));
      await allCalls(p);
      const [download] = await Promise.all([p.waitForEvent('download'), link.click()]);
      downloads.push({ locale, filename: download.suggestedFilename(), text: readFileSync(await download.path(), 'utf8') });
    }
    writeFileSync(env('CDRBOX_RESULTS'), JSON.stringify({ today, rows, totalText, heads, downloads }));
    console.log('ok: downloads ' + downloads.map((d) => d.locale + ' ' + d.filename).join(', '));

    if (errors.length) fail('page errors:\n' + errors.join('\n'));
    console.log('e2e: all passed');
  } catch (e) {
    await reportFailure(browser, shots, errors);
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error('e2e FAILED:', e.message); process.exit(1); });
