// The stats page's supervisor views (issue 13, item 3) in headless Chromium at desktop
// (1366×768) and phone (390×844) widths: the trend in every bucket size, top callers and
// destinations, queue abandonment by wait, service level per queue and per-agent answer rates
// show exactly the numbers /api/stats gives for the same form, no page scrolls sideways, every
// cell of the new tables is on screen at 390 px. History comes from importing the real
// Master.csv capture (calls of 2026-11-22) beside the demo's calls of today, so the range spans
// days with empty ones between. Saves screenshots into $CDRBOX_E2E_SHOTS (look at them).
//
//   CDRBOX_E2E_CMD        `cdrbox demo …` (tests/web_e2e_stats.rs sets it)
//   CDRBOX_E2E_CODE_FILE  where the one-time setup code is, when the banner does not print it
//   CDRBOX_MASTER_CSV     the Master.csv to import as history
//   CDRBOX_E2E_SHOTS      directory for the screenshots
//   CHROMIUM              browser path (default /usr/bin/chromium)
import { readFileSync } from 'node:fs';
import { fail, openSetup, pageGet, putPbx, runOnServer, submitSetup, until } from './lib.mjs';

const cmd = process.env.CDRBOX_E2E_CMD || '../../target/release/cdrbox demo --listen 127.0.0.1:0 --rate 2';
const csv = process.env.CDRBOX_MASTER_CSV || '../fixtures/ami/meta/cdr-csv-Master.csv';
const shots = process.env.CDRBOX_E2E_SHOTS || '/tmp/cdrbox-stats-shots';
const PASS = 'stats-password-1';
const PBX = 'demo-pbx';
const HISTORY_DAY = '2026-11-22';
const WIDTHS = [[1366, 768], [390, 844]];

// The page's own formatting (app.js), so a number is compared as the page must show it.
const pad = (n) => String(n).padStart(2, '0');
function hms(s) { if (s === null || s === undefined) return '–'; s = Math.round(s); return (s >= 3600 ? Math.floor(s / 3600) + ':' : '') + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60); }
const pct = (x) => (x === null || x === undefined) ? '–' : (x * 100).toFixed(1) + ' %';
const callerCell = (name, number) => name ? name : (number ? '' : 'no caller ID');
const withName = (number, name) => name ? (number ? number + ' · ' + name : name) : (number || '');

const getJson = async (page, path) => JSON.parse(await pageGet(page, path));

// Every body row of a table as its cells' texts.
const rowsOf = (page, table) => page.locator('#' + table + ' tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.cells, (c) => c.textContent)));

// What each new table must hold for the answer `s`; a table with nothing to show has one
// row whose only cell says so.
function expected(s) {
  const orEmpty = (rows) => rows.length ? rows : null;
  return {
    'trend-table': orEmpty(s.trend.map((p) => [p.start, String(p.calls), String(p.answered), String(p.missed), hms(p.talkSeconds)])),
    'top-callers': orEmpty(s.topCallers.map((n) => [n.number || '(no number)', n.numberName || callerCell(n.name, n.number), String(n.calls), String(n.answered), hms(n.talkSeconds)])),
    'top-destinations': orEmpty(s.topDestinations.map((n) => [n.number ? withName(n.number, n.numberName) : '(no number)', String(n.calls), String(n.answered), hms(n.talkSeconds)])),
    agents: orEmpty(s.agents.map((a) => [withName(a.agent, a.agentName), String(a.offeredCalls), String(a.answeredCalls), pct(a.answerRate), hms(a.talkSeconds), hms(a.avgTalkSeconds), hms(a.avgRingSeconds), String(a.offered)])),
    'abandon-wait': orEmpty(s.queues.map((q) => [q.queue, ...q.abandonedByWait.map((b) => String(b.abandoned)), String(q.abandoned)])),
    // Service level per queue: answered within the form's threshold, of the queue's calls.
    queues: orEmpty(s.queues.map((q) => [q.queue, String(q.calls), String(q.answered), String(q.abandoned), pct(q.serviceLevel) + ' ≤ ' + s.slaSeconds + ' s', pct(q.abandonRate), hms(q.avgWaitSeconds)])),
  };
}

// The answer's own sums: the trend counts each call once, the wait buckets each abandoned
// call once, no agent answers more calls than rang it.
function consistent(s, what) {
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  if (sum(s.trend.map((p) => p.calls)) !== s.calls) fail(what + ': the trend holds ' + sum(s.trend.map((p) => p.calls)) + ' calls, the range ' + s.calls);
  for (const q of s.queues) {
    if (sum(q.abandonedByWait.map((b) => b.abandoned)) !== q.abandoned) fail(what + ': queue ' + q.queue + ' wait buckets do not add up to ' + q.abandoned);
  }
  for (const a of s.agents) if (a.answeredCalls > a.offeredCalls) fail(what + ': agent ' + a.agent + ' answered more calls than were offered');
}

// Submits the stats form and waits until the page shows what the API answers for the same
// form values (polled: a call may still be committing); resolves with that answer.
async function showStats(page, trend) {
  await page.selectOption('#stats-form select[name=trend]', trend);
  let st = null, seen = '';
  await until('the stats page (trend ' + (trend || 'auto') + ') to equal /api/stats', async () => {
    const q = new URLSearchParams();
    for (const n of ['from', 'to', 'pbx', 'sla', 'callbackMinutes', 'trend']) {
      const v = await page.inputValue('#stats-form [name=' + n + ']');
      if (v !== '') q.set(n, v);
    }
    st = await getJson(page, '/api/stats?' + q);
    await page.click('#stats-form button[type=submit]');
    // Polled from Node: page.waitForFunction evaluates a string, which the page's CSP refuses.
    try {
      await until('the bucket shown', async () => ((await page.textContent('#trend-bucket')) || '').includes(st.trendBucket), 3000);
    } catch (e) { seen = 'bucket: page ' + (await page.textContent('#trend-bucket')) + ', API ' + st.trendBucket; return false; }
    for (const [table, want] of Object.entries(expected(st))) {
      const got = await rowsOf(page, table);
      const ok = want ? JSON.stringify(got) === JSON.stringify(want) : got.length === 1 && got[0].length === 1;
      if (!ok) { seen = table + ': page ' + JSON.stringify(got).slice(0, 400) + ', API ' + JSON.stringify(want).slice(0, 400); return false; }
    }
    const bars = await page.locator('#trend svg rect.answered').count();
    if (bars !== st.trend.length) { seen = 'trend chart: ' + bars + ' bars, API ' + st.trend.length + ' points'; return false; }
    // The wait columns are the API's buckets, in words.
    const heads = await page.locator('#abandon-wait thead th').allTextContents();
    const buckets = st.queues.length ? st.queues[0].abandonedByWait.length : 0;
    if (st.queues.length && heads.length !== buckets + 2) { seen = 'abandon-wait header ' + JSON.stringify(heads); return false; }
    return true;
  }, 30000).catch((e) => fail(e.message + ' — last difference: ' + seen));
  consistent(st, 'trend ' + (trend || 'auto'));
  return st;
}

async function noSidewaysScroll(page, what) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (scroll > width) fail(what + ': the page scrolls sideways (' + scroll + ' px wide in a ' + width + ' px window)');
}

// Every cell of the new tables lies inside the window (a table may scroll inside its card on
// a wide screen, never on a phone, where each row is a block of labelled cells).
async function cellsOnScreen(page, w) {
  for (const table of ['trend-table', 'top-callers', 'top-destinations', 'agents', 'abandon-wait', 'queues']) {
    const boxes = await page.locator('#' + table + ' tbody td').evaluateAll((tds) => tds.map((td) => {
      const r = td.getBoundingClientRect();
      return [r.left, r.right, td.dataset.label || (td.colSpan > 1 ? '(note)' : ''), td.textContent];
    }));
    for (const [left, right, label, text] of boxes) {
      if (!label) fail(table + ': a cell without its column name at ' + w + ' px: ' + text);
      if (left < 0 || right > w + 0.5) fail(table + ': cell ' + label + ' "' + text + '" is off screen at ' + w + ' px (' + left + '–' + right + ')');
    }
  }
}

const main = () => runOnServer(cmd, shots, async ({ page, base, code }) => {
  // First setup, as in people.e2e.mjs.
  await openSetup(page, base);
  await submitSetup(page, base, code, PASS);

  // History: the real capture's calls of 2026-11-22, imported as a user would.
  const session = await getJson(page, '/api/session');
  const imported = await page.evaluate(async ([text, pbx, csrf]) => {
    const r = await fetch('/api/import?pbx=' + encodeURIComponent(pbx), { method: 'POST', body: text, credentials: 'same-origin',
      headers: { 'X-Requested-With': 'cdrbox', 'X-CSRF-Token': csrf, 'Content-Type': 'text/csv' } });
    return [r.status, await r.text()];
  }, [readFileSync(csv, 'utf8'), PBX, session.csrf]);
  if (imported[0] !== 200 || !JSON.parse(imported[1]).new) fail('importing ' + csv + ': ' + imported.join(' '));
  console.log('ok: history imported: ' + JSON.parse(imported[1]).new + ' records of ' + HISTORY_DAY);

  // Today's calls from the demo: enough for callers, destinations, a queue and its agents.
  await until('the demo to make inbound, outbound and queue calls', async () => {
    const s = await getJson(page, '/api/stats');
    return s.topCallers.length >= 2 && s.topDestinations.length >= 1 && s.queues.length >= 1 && s.agents.length >= 2;
  }, 120000);
  // No new calls from here on (as in people.e2e.mjs): the PBX switched off by the settings API.
  await putPbx(page, session.csrf, { enabled: false }, 'switching the PBX off');
  console.log('ok: the demo made inbound, outbound and queue calls');

  await page.click('a[data-tab=stats]');
  await page.locator('#stats-kpis .kpi').first().waitFor();
  // Today alone: the trend is by hour unless asked otherwise.
  const today = await showStats(page, '');
  if (today.trendBucket !== 'hour') fail('today reads by ' + today.trendBucket + ', not by hour');
  console.log('ok: today by hour, ' + today.trend.length + ' hours, ' + today.calls + ' calls: page = API');

  // From the history day to today: by day, the days without calls shown as empty.
  const to = await page.inputValue('#stats-form input[name=to]');
  await page.fill('#stats-form input[name=from]', HISTORY_DAY);
  const days = Math.round((Date.parse(to) - Date.parse(HISTORY_DAY)) / 86400e3) + 1;
  const byDay = await showStats(page, '');
  if (byDay.trendBucket !== 'day') fail(days + ' days read by ' + byDay.trendBucket + ', not by day');
  if (byDay.trend.length !== days) fail('the trend has ' + byDay.trend.length + ' days, the range ' + days);
  if (byDay.trend[0].start !== HISTORY_DAY || !byDay.trend[0].calls) fail('the first day is ' + JSON.stringify(byDay.trend[0]));
  if (!byDay.trend.some((p) => p.calls === 0)) fail('no empty day between ' + HISTORY_DAY + ' and ' + to);
  console.log('ok: ' + days + ' days by day (' + byDay.trend.filter((p) => !p.calls).length + ' empty): page = API');
  await page.click('#trend-details summary');
  for (const [w, h] of WIDTHS) {
    await page.setViewportSize({ width: w, height: h });
    const again = await showStats(page, '');
    if (JSON.stringify(again.trend) !== JSON.stringify(byDay.trend)) fail('the trend changed at ' + w + ' px');
    await noSidewaysScroll(page, 'stats at ' + w + ' px');
    if (w < 600) await cellsOnScreen(page, w);
    await page.screenshot({ path: shots + '/' + w + '-stats.png', fullPage: true });
    // A phone's page is too long to read in one image: each card on its own as well.
    if (w < 600) {
      const cards = page.locator('#tab-stats .card');
      for (let i = 0, n = await cards.count(); i < n; i++) await cards.nth(i).screenshot({ path: shots + '/' + w + '-card-' + pad(i) + '.png' });
    }
    await page.locator('#trend').screenshot({ path: shots + '/' + w + '-trend-day.png' });
    for (const bucket of ['hour', 'week', 'month']) {
      const st = await showStats(page, bucket);
      if (st.trendBucket !== bucket) fail('asked for ' + bucket + ', got ' + st.trendBucket);
      await noSidewaysScroll(page, 'stats by ' + bucket + ' at ' + w + ' px');
      if (w < 600) await cellsOnScreen(page, w);
      await page.locator('#trend').screenshot({ path: shots + '/' + w + '-trend-' + bucket + '.png' });
    }
    await page.selectOption('#stats-form select[name=trend]', '');
    console.log('ok: ' + w + ' px: hour, day, week, month equal the API; no sideways scroll; screenshots in ' + shots);
  }
  // A bookmark keeps the bucket: the form's values are in the address.
  await showStats(page, 'week');
  if (!/trend=week/.test(page.url())) fail('the address does not keep the trend: ' + page.url());
  await page.reload();
  await page.locator('#stats-kpis .kpi').first().waitFor();
  if (await page.inputValue('#stats-form select[name=trend]') !== 'week') fail('a reload lost trend=week');
  await until('the reloaded page to show weeks', async () => /week/.test((await page.textContent('#trend-bucket')) || ''), 10000);
  console.log('ok: trend=week kept in the address and on reload');
});

main().catch((e) => { console.error('e2e FAILED:', e.message); process.exit(1); });
