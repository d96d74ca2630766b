// The status page's Uplink card (issue 16 item 4) in headless Chromium at desktop (1366×768) and
// phone (390×844) width, against real boxes (tests/uplink_status_browser.rs starts them): one
// forwarding to a real PostgreSQL, one pointed at a closed port. For each box and width: log in,
// open the status tab, and check that the card says what /api/status says — the state in words
// ("up to date", "server unreachable — retrying"), the records not yet sent as a number and
// their age as a time, the server's address with the password hidden, the last error in full —
// and that neither the page nor the card scrolls sideways. Screenshots of the page and of the
// card go to $CDRBOX_E2E_SHOTS (look at them). Any JavaScript error fails the test.
//
//   CDRBOX_E2E_BOXES  JSON: [{"name": "real", "base": "http://127.0.0.1:PORT", "expect": "up to date"}, …]
//   CDRBOX_E2E_PASS   the admin password of every box
//   CDRBOX_E2E_SECRET the PostgreSQL password in the boxes' [uplink] url (must not be shown)
//   CDRBOX_E2E_SHOTS  directory for the screenshots
//   CHROMIUM          browser path (default /usr/bin/chromium)
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { fail, pageGet, until } from './lib.mjs';

const boxes = JSON.parse(process.env.CDRBOX_E2E_BOXES || fail('CDRBOX_E2E_BOXES must be set'));
const PASS = process.env.CDRBOX_E2E_PASS || fail('CDRBOX_E2E_PASS must be set');
const SECRET = process.env.CDRBOX_E2E_SECRET || '';
const shots = process.env.CDRBOX_E2E_SHOTS || '/tmp/cdrbox-uplink-shots';
const WIDTHS = [[1366, 768], [390, 844]];
const SECONDS = { s: 1, min: 60, h: 3600, d: 86400 };

// The card's facts by their label (dt → dd).
async function cardFacts(page) {
  return page.evaluate(() => {
    const out = {};
    for (const dt of document.querySelectorAll('#uplink dt')) out[dt.textContent] = dt.nextElementSibling.textContent;
    return out;
  });
}

// What the card must say about `u` (the API's uplink), or null when it does: checked against
// the API's numbers, not against the page's own formatter.
function mismatch(facts, u, expect) {
  const state = facts.State || '';
  const want = { 'up to date': /^up to date$/, unreachable: /^server unreachable — retrying$/ }[expect];
  if (!want.test(state)) return 'state ' + JSON.stringify(state) + ' for ' + expect;
  if (u.state !== (expect === 'up to date' ? 'up to date' : 'retrying')) return 'the API says ' + u.state;
  const lag = facts['Not yet sent'] || '';
  if (u.lag_records === 0) {
    if (!/^nothing waiting/.test(lag)) return 'lag ' + JSON.stringify(lag) + ' with nothing waiting';
  } else {
    const m = /^(\d+) records?(?:, (\d+) (s|min|h|d))? not yet sent$/.exec(lag);
    if (!m) return 'lag in words: ' + JSON.stringify(lag);
    if (Number(m[1]) !== u.lag_records) return 'lag ' + m[1] + ' records, the API ' + u.lag_records;
    if (u.lag_seconds !== null) {
      if (!m[2]) return 'no age in ' + JSON.stringify(lag);
      // The card is at most one refresh (5 s) older than the API read after it; rounding to
      // the unit shown takes at most half a unit.
      const shown = Number(m[2]) * SECONDS[m[3]];
      if (Math.abs(shown - u.lag_seconds) > 10 + SECONDS[m[3]] / 2) return 'age ' + lag + ', the API ' + u.lag_seconds + ' s';
    }
  }
  if (facts.Server !== u.target) return 'server ' + JSON.stringify(facts.Server) + ', the API ' + JSON.stringify(u.target);
  if (SECRET && facts.Server.includes(SECRET)) return 'the password is shown in ' + facts.Server;
  if (!facts.Server.includes('***')) return 'the password is not shown as *** in ' + facts.Server;
  if ((u.last_error || null) !== (facts['Last error'] === undefined ? null : facts['Last error'])) {
    return 'last error ' + JSON.stringify(facts['Last error']) + ', the API ' + JSON.stringify(u.last_error);
  }
  if (expect === 'unreachable' && !/^cannot connect/.test(u.last_error || '')) return 'the error is not a connect error: ' + u.last_error;
  if (!/^\d+ since the box started/.test(facts.Sent || '') || Number(facts.Sent.split(' ')[0]) !== u.sent_records) return 'sent ' + facts.Sent + ', the API ' + u.sent_records;
  return null;
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'] });
  const errors = [];
  try {
    for (const b of boxes) {
      for (const [w, h] of WIDTHS) {
        const ctx = await browser.newContext({ viewport: { width: w, height: h } });
        const page = await ctx.newPage();
        page.on('pageerror', (e) => errors.push(b.name + ' ' + w + ': pageerror: ' + e.message));
        page.on('console', (m) => { if (m.type() === 'error' && !/display\.png|404/.test(m.text())) errors.push(b.name + ' ' + w + ': console: ' + m.text()); });
        await page.goto(b.base + '/login');
        await page.locator('#login').waitFor({ state: 'visible' });
        await page.fill('#login-password', PASS);
        await Promise.all([page.waitForURL(b.base + '/'), page.click('#login button[type=submit]')]);
        await page.locator('#uplink-card').waitFor({ state: 'visible' });
        let last = 'never compared';
        await until(b.name + ' at ' + w + ' px: the card says what /api/status says', async () => {
          const facts = await cardFacts(page);
          const u = JSON.parse(await pageGet(page, '/api/status')).uplink;
          if (!u) fail(b.name + ': /api/status has no uplink');
          last = mismatch(facts, u, b.expect);
          return last === null;
        }, 60000).catch((e) => fail(e.message + ' (last difference: ' + last + ')'));
        // Nothing wider than the window: the page, and the card's own content (a long error
        // or URL must wrap, not push the card out).
        const [scroll, width, card] = await page.evaluate(() => {
          const c = document.getElementById('uplink-card');
          return [document.documentElement.scrollWidth, window.innerWidth, [c.scrollWidth, c.clientWidth, c.getBoundingClientRect().right]];
        });
        if (scroll > width) fail(b.name + ' at ' + w + ' px: the page scrolls sideways (' + scroll + ' px in ' + width + ')');
        if (card[0] > card[1] || card[2] > width) fail(b.name + ' at ' + w + ' px: the card overflows (' + card.join(', ') + ')');
        await page.screenshot({ path: shots + '/' + w + '-' + b.name + '-status.png', fullPage: true });
        await page.locator('#uplink-card').screenshot({ path: shots + '/' + w + '-' + b.name + '-card.png' });
        console.log('ok: ' + b.name + ' at ' + w + ' px: ' + JSON.stringify(await cardFacts(page)));
        await ctx.close();
      }
    }
    if (errors.length) fail(errors.join('\n'));
    console.log('e2e: all passed');
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error('e2e: FAILED: ' + (e.stack || e)); process.exit(1); });
