// cdrbox single-page app: Status, Calls, Stats, Settings, Setup help.
// Plain JS, no framework, no CDN, no inline scripts (CSP). All text from the box or the PBX is
// put into the page with textContent, never innerHTML (caller names come from outside).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { csrf: null, role: 'viewer', offset: 0, limit: 50, total: 0, tab: 'status', tz: 0, profiles: ['standard', 'excel', 'pbxlogger', 'asterisk'] };

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') n.className = v; else if (k === 'text') n.textContent = v; else n.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) n.append(kid instanceof Node ? kid : String(kid));
    return n;
  }
  const clear = (n) => { while (n.firstChild) n.removeChild(n.firstChild); return n; };

  async function api(path, opts) {
    opts = opts || {};
    const headers = { 'X-Requested-With': 'cdrbox' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.method && opts.method !== 'GET') headers['X-CSRF-Token'] = state.csrf || '';
    const r = await fetch(path, { method: opts.method || 'GET', headers, credentials: 'same-origin',
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    if (r.status === 401) { location.href = '/login'; throw new Error('not logged in'); }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) { const err = new Error((data && data.error) || ('HTTP ' + r.status)); err.param = data && data.param; err.detail = data && data.detail; err.status = r.status; throw err; }
    return data;
  }

  // ---- formatting -------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, '0');
  function hms(s) { if (s === null || s === undefined) return '–'; s = Math.round(s); return (s >= 3600 ? Math.floor(s / 3600) + ':' : '') + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60); }
  function localTime(utc) { // box-local display in the PBX's offset
    if (utc === null || utc === undefined) return '–';
    const d = new Date((utc + state.tz) * 1000);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }
  function ago(utc, now) { if (!utc) return ''; const s = Math.max(0, now - utc); return s < 90 ? s + ' s ago' : s < 5400 ? Math.round(s / 60) + ' min ago' : s < 172800 ? Math.round(s / 3600) + ' h ago' : Math.round(s / 86400) + ' d ago'; }
  const pct = (x) => (x === null || x === undefined) ? '–' : (x * 100).toFixed(1) + ' %';
  const bytes = (b) => b >= 1e9 ? (b / 1e9).toFixed(1) + ' GB' : b >= 1e6 ? (b / 1e6).toFixed(1) + ' MB' : b >= 1e3 ? (b / 1e3).toFixed(0) + ' kB' : b + ' B';
  const kpi = (value, label) => el('div', { class: 'kpi' }, el('b', { text: value }), el('span', { text: label }));
  const showTime = (iso) => iso ? iso.replace('T', ' ').replace(/([+-]\d\d:\d\d|Z)$/, '') : '–';

  // ---- tabs -------------------------------------------------------------------------------
  function showTab() {
    // `#calls?from=…&disposition=…`: a filtered view is a link (bookmark it, send it).
    const [tab, query] = (location.hash || '#status').slice(1).split('?');
    state.tab = ['status', 'calls', 'stats', 'settings', 'setup'].includes(tab) ? tab : 'status';
    if (query !== undefined) fillForm({ calls: $('filters'), stats: $('stats-form') }[state.tab], new URLSearchParams(query));
    for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== 'tab-' + state.tab;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.tab === state.tab);
    const own = { status: loadStatus, calls: loadCalls, stats: loadStats, setup: loadSetup };
    // Other pages (settings.js) register their loader in window.cdrbox.tabs.
    const load = own[state.tab] || window.cdrbox.tabs[state.tab];
    if (load) load();
    refreshAlarms();
  }

  // ---- filters in the URL and quick ranges -------------------------------------------------
  function fillForm(form, q) {
    if (!form) return;
    for (const n of form.elements) {
      if (!n.name) continue;
      if (n.type === 'checkbox') n.checked = q.getAll(n.name).includes(n.value);
      else if (q.has(n.name)) n.value = n.type === 'datetime-local' ? q.get(n.name).replace(' ', 'T') : q.get(n.name);
      else if (n.tagName !== 'SELECT') n.value = n.defaultValue;
    }
  }
  function keepInUrl(tab, q) {
    const s = q.toString();
    history.replaceState(null, '', '#' + tab + (s ? '?' + s : ''));
  }
  // [from, to) of a named range in the PBX's local time, as `YYYY-MM-DD` days (to exclusive).
  function quickRange(name) {
    const now = new Date(Date.now() + state.tz * 1000);
    const day = (y, m, d) => new Date(Date.UTC(y, m, d));
    const y = now.getUTCFullYear(), m = now.getUTCMonth(), d = now.getUTCDate();
    const today = day(y, m, d);
    const monday = day(y, m, d - ((now.getUTCDay() + 6) % 7));
    const add = (t, n) => new Date(t.getTime() + n * 86400e3);
    const r = {
      today: [today, add(today, 1)], yesterday: [add(today, -1), today],
      week: [monday, add(monday, 7)], last7: [add(today, -6), add(today, 1)],
      month: [day(y, m, 1), day(y, m + 1, 1)], lastmonth: [day(y, m - 1, 1), day(y, m, 1)],
    }[name];
    const iso = (t) => t.toISOString().slice(0, 10);
    return [iso(r[0]), iso(r[1])];
  }
  function quickRanges(box, form, inclusiveDays) {
    for (const [name, label] of [['today', 'Today'], ['yesterday', 'Yesterday'], ['week', 'This week'], ['last7', 'Last 7 days'], ['month', 'This month'], ['lastmonth', 'Last month']]) {
      const b = el('button', { type: 'button', class: 'secondary', 'data-range': name, text: label });
      b.addEventListener('click', () => {
        const [from, to] = quickRange(name);
        // The stats form takes whole days (its To is inclusive); the calls form takes times.
        const last = new Date(Date.parse(to) - 86400e3).toISOString().slice(0, 10);
        form.elements.from.value = inclusiveDays ? from : from + 'T00:00';
        form.elements.to.value = inclusiveDays ? last : to + 'T00:00';
        form.requestSubmit();
      });
      box.append(b);
    }
  }

  // ---- alarms: a strip under the header of every page while any alarm stands ----------------
  // Warnings (the clock not synchronised, a PBX's clock off) stand in the same strip, amber:
  // they lose no call, so they are not mailed, but a person should see them on every page.
  function showAlarms(alarms, warnings) {
    const strip = clear($('alarms'));
    for (const a of alarms || []) strip.append(el('div', { class: 'alarm' }, el('b', { text: a.code + ' ' }), a.message));
    for (const a of warnings || []) strip.append(el('div', { class: 'alarm warning' }, el('b', { text: a.code + ' ' }), a.message));
    strip.hidden = !strip.firstChild;
  }
  async function refreshAlarms() {
    // The status tab refreshes them itself; elsewhere a quiet poll keeps the strip current.
    if (state.tab === 'status') return;
    try { const s = await api('/api/status'); showAlarms(s.alarms, s.warnings); } catch (e) { /* the next poll retries */ }
  }

  // ---- box health (issue 13 item 4): what the box could not read says so, never a guess --------
  function duration(s) {
    if (s === null || s === undefined) return 'not available';
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return d ? d + ' d ' + h + ' h' : h ? h + ' h ' + m + ' min' : m + ' min ' + (s % 60) + ' s';
  }
  function showHealth(s) {
    const h = s.health || {};
    const st = s.storage || {};
    const na = 'not available';
    const clock = h.clock || { state: 'unknown' };
    const clockText = clock.state === 'synchronised' ? 'synchronised (error ≤ ' + clock.max_error_ms + ' ms)'
      : clock.state === 'not_synchronised' ? 'NOT synchronised — call times may be wrong'
      : 'unknown' + (clock.reason ? ' (' + clock.reason + ')' : '');
    const rows = [
      ['Version', h.version || na, ''],
      ['Uptime', duration(h.uptime_seconds) + (h.system_uptime_seconds !== null && h.system_uptime_seconds !== undefined ? ' (system ' + duration(h.system_uptime_seconds) + ')' : ''), ''],
      ['CPU temperature', h.cpu_temp_millicelsius === null || h.cpu_temp_millicelsius === undefined ? na : (h.cpu_temp_millicelsius / 1000).toFixed(1) + ' °C', h.cpu_temp_millicelsius >= 80000 ? 'bad' : ''],
      ['Memory', (h.rss_bytes ? bytes(h.rss_bytes) + ' used by the box' : na) + '; ' + (h.mem_available_bytes ? bytes(h.mem_available_bytes) + ' available' + (h.mem_total_bytes ? ' of ' + bytes(h.mem_total_bytes) : '') : 'available ' + na), ''],
      ['Disk', st.total_bytes ? bytes(st.free_bytes) + ' free of ' + bytes(st.total_bytes) : na, ''],
      ['Clock', clockText, clock.state === 'synchronised' ? 'ok' : clock.state === 'not_synchronised' ? 'warn' : 'muted'],
    ];
    // Each PBX's clock against the box's, from its last pong (links[].pbx_clock_skew_ms); the
    // box warns past 10 s (PBX CLOCK in the alarm strip).
    for (const l of s.links || []) {
      const ms = l.pbx_clock_skew_ms;
      if (ms === null || ms === undefined) continue;
      const secs = Math.abs(ms) / 1000;
      const text = secs < 1 ? 'within 1 s of the box' : (secs < 10 ? secs.toFixed(1) : Math.round(secs)) + ' s ' + (ms > 0 ? 'ahead of' : 'behind') + ' the box';
      rows.push(['Clock of PBX ' + l.pbx, text, Math.abs(ms) > 10000 ? 'warn' : 'ok']);
    }
    const dl = clear($('health'));
    for (const [k, v, cls] of rows) dl.append(el('dt', { text: k }), el('dd', { class: cls || null, text: v }));
  }
  // ---- the central PostgreSQL uplink (issue 16 item 4): in words, not the API's state codes ------
  // A span of time as a person says it: "40 s", "4 min", "3 h", "2 d".
  function span(s) { s = Math.max(0, Math.round(s)); return s < 90 ? s + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : s < 172800 ? Math.round(s / 3600) + ' h' : Math.round(s / 86400) + ' d'; }
  // The state sentence and its colour. `retrying` covers every failure: the error's own words
  // (src/uplink/forward.rs: "cannot connect: …", "no answer from the server …") tell an
  // unreachable server from one that refused the records.
  function uplinkState(u) {
    const err = u.last_error || '';
    if (u.state === 'up to date') return ['up to date', 'ok'];
    if (u.state === 'sending') return ['sending', 'ok'];
    if (u.state === 'connecting') return ['connecting to the server', 'warn'];
    if (u.state === 'off') return ['off: the [uplink] settings cannot be used', 'bad'];
    if (u.state === 'retrying') {
      return [/^(cannot connect|no answer from the server)/.test(err) ? 'server unreachable — retrying' : 'the server refused the records — retrying', 'bad'];
    }
    return [u.state, 'warn'];
  }
  function uplinkLag(u) {
    if (!u.lag_records) return 'nothing waiting: every stored record is on the server';
    return u.lag_records + ' record' + (u.lag_records === 1 ? '' : 's') +
      (u.lag_seconds === null || u.lag_seconds === undefined ? '' : ', ' + span(u.lag_seconds)) + ' not yet sent';
  }
  function showUplink(s) {
    const u = s.uplink;
    $('uplink-card').hidden = !u;
    if (!u) return;
    const [words, cls] = uplinkState(u);
    const dl = clear($('uplink'));
    const row = (k, v, c) => dl.append(el('dt', { text: k }), el('dd', { class: c || null, 'data-uplink': k.toLowerCase() }, v));
    row('State', el('span', { class: 'pill ' + cls, text: words }));
    row('Not yet sent', uplinkLag(u), u.lag_records ? 'warn' : '');
    row('Sent', u.sent_records + ' since the box started' + (u.last_ok_utc ? '; last at ' + localTime(u.last_ok_utc) + ' (' + ago(u.last_ok_utc, s.now_utc) + ')' : ''));
    row('Server', u.target);
    if (u.last_error) row('Last error', u.last_error, 'bad');
  }
  // Tables marked `cards` become one block per row on a phone; each cell shows its column's
  // name from the header (CSS reads data-label), so no column is off screen.
  function labelCells(table) {
    const names = Array.from(table.tHead.rows[0].cells, (th) => th.textContent);
    for (const tr of table.tBodies[0].rows) {
      Array.from(tr.cells).forEach((td, i) => { if (td.colSpan === 1 && names[i]) td.dataset.label = names[i]; });
    }
  }

  // ---- status -----------------------------------------------------------------------------
  async function loadStatus() {
    let s;
    try { s = await api('/api/status'); } catch (e) { banner(e.message); return; }
    banner('');
    state.tz = s.local_offset_seconds || 0;
    $('box-name').textContent = s.box_name || 'cdrbox';
    showAlarms(s.alarms, s.warnings);
    showHealth(s);
    clear($('today')).append(kpi(s.today.total, 'calls'), kpi(s.today.answered, 'answered calls'), kpi(s.today.missed, 'missed calls'));
    $('last-call').textContent = s.last_call_utc ? 'Last call ' + localTime(s.last_call_utc) + ' (' + ago(s.last_call_utc, s.now_utc) + ')' : 'No call yet today.';
    const st = s.storage || {};
    const used = st.total_bytes ? 100 - (st.free_bytes * 100 / st.total_bytes) : null;
    clear($('storage')).append(
      el('div', { class: 'kpis' }, kpi(st.committed, 'records'), kpi(bytes(st.db_bytes || 0), 'database'),
        kpi(used === null ? '–' : used.toFixed(0) + ' %', 'disk used'), kpi(st.days_until_full === null || st.days_until_full === undefined ? '–' : st.days_until_full + ' d', 'until full')),
      el('p', { class: 'muted', text: (st.pending ? st.pending + ' waiting in the ring file. ' : '') + (st.memory_only ? st.memory_only + ' only in memory! ' : '') + (st.path || '') }));
    const usb = s.usb || { state: 'no_stick' };
    const usbText = { no_stick: 'No stick.', copying: 'Copying… ' + usb.percent + ' %', safe_to_remove: 'SAFE TO REMOVE — ' + usb.records + ' records copied.', error: 'Error: ' + usb.message }[usb.state] || usb.state;
    clear($('usb')).append(el('p', { class: usb.state === 'error' ? 'bad' : usb.state === 'safe_to_remove' ? 'ok' : '', text: usbText }));
    // Alarm channels (e-mail, webhook): where they go and how the last delivery went.
    const chans = s.alarm_channels || [];
    $('alarm-channels-card').hidden = !chans.length;
    $('send-test-alarm').disabled = state.role !== 'admin';
    const ac = clear($('alarm-channels'));
    for (const c of chans) {
      const result = c.last_error ? 'last attempt failed: ' + c.last_error
        : c.last_ok_utc ? 'last delivered ' + localTime(c.last_ok_utc) : 'nothing sent yet';
      ac.append(el('p', { class: c.last_error ? 'bad' : '' }, el('b', { text: c.channel + ' ' }), c.target + ' — ' + result + (c.queued ? ' (' + c.queued + ' waiting)' : '')));
    }
    const tb = clear($('links').tBodies[0]);
    for (const l of s.links || []) {
      const cls = l.state === 'up' ? 'ok' : l.state === 'connecting' ? 'warn' : 'bad';
      // A short pill; the reason beside it wraps (a whole error in one pill pushed the table
      // off a phone's screen).
      const reason = l.state === 'down' && l.reason ? el('span', { class: 'reason', text: l.reason }) : null;
      tb.append(el('tr', {}, el('td', { text: l.pbx }), el('td', { class: 'addr', text: l.address }), el('td', { class: 'state' }, el('span', { class: 'pill ' + cls, text: l.state.replace('_', ' ') }), reason),
        el('td', { text: localTime(l.since_utc) + ' (' + ago(l.since_utc, s.now_utc) + ')' }), el('td', { text: l.last_record_utc ? ago(l.last_record_utc, s.now_utc) : 'never' }),
        el('td', { text: l.records }), el('td', { text: l.reconnects })));
    }
    if (!(s.links || []).length) tb.append(el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'No PBX configured: see Settings.' })));
    labelCells($('links'));
    const gaps = clear($('gaps'));
    const g = s.recentGaps || [];
    if (!g.length) gaps.textContent = 'No gaps: every link was up.';
    // Open = no import has filled it yet: only those count (storage.gaps, all time).
    const open = (s.storage && s.storage.gaps) || 0;
    if (g.length) gaps.append(el('div', { class: 'gap-count', text: open + ' open gap' + (open === 1 ? '' : 's') + ' (not filled by an import)' }));
    for (const x of g) {
      const state = x.filled ? 'filled from ' + x.filled.from + ' (' + x.filled.records + ' record' + (x.filled.records === 1 ? '' : 's') + ' added)' : 'open';
      gaps.append(el('div', { class: 'gap ' + (x.filled ? 'filled' : 'open'), text: x.pbx + ': ' + localTime(x.fromUtc) + ' → ' + (x.toUtc ? localTime(x.toUtc) : 'still down') + ' — ' + x.reason + ' — ' + state }));
    }
    // The CDR databases that fill the gaps ([[pbx]] cdr_db): one status line each.
    const dbs = clear($('cdrdb'));
    for (const d of s.cdr_db || []) {
      const cls = d.state === 'ok' ? 'ok' : d.state === 'failing' ? 'bad' : 'warn';
      const what = d.state === 'failing' ? (d.code || 'DB DOWN') + ': ' + (d.message || '')
        : d.state === 'ok' ? 'last pull ' + (d.lastOkUtc ? ago(d.lastOkUtc, s.now_utc) : '') + ': ' + d.lastRows + ' rows read, ' + d.lastNew + ' new; ' + d.totalNew + ' filled since start'
        : 'waiting for the first pull';
      dbs.append(el('div', { class: 'cdrdb' }, 'CDR database of ' + d.pbx + ' (' + (d.addr || '?') + '): ', el('span', { class: 'pill ' + cls, text: d.state }), ' ' + what +
        (d.waitingGaps ? ' — ' + d.waitingGaps + ' gap(s) waiting' : '')));
    }
    $('oled').src = '/display.png?t=' + s.now_utc;
    showUplink(s);
    showFingerprint(s.tls_fingerprint);
    const sel = $('import-pbx');
    const names = (s.links || []).map((l) => l.pbx);
    if (sel.options.length !== names.length) { clear(sel); for (const n of names) sel.append(el('option', { value: n, text: n })); }
    $('import-form').hidden = state.role !== 'admin' || !names.length;
  }

  // Master.csv upload (POST /api/import): the file goes as the body, the report comes back.
  // The status page's gap card and each PBX on the settings page (settings.js, through
  // window.cdrbox.importMasterCsv) use this one function, so both uploads send the same options
  // and show the same report. Resolves with the report, or null when the import failed.
  async function importMasterCsv(file, pbx, gmt, out) {
    const q = new URLSearchParams({ pbx });
    if (gmt) q.set('usegmtime', '1');
    out.textContent = 'Importing ' + file.name + '…';
    let r;
    try {
      r = await fetch('/api/import?' + q, { method: 'POST', body: file, credentials: 'same-origin',
        headers: { 'X-Requested-With': 'cdrbox', 'X-CSRF-Token': state.csrf || '', 'Content-Type': 'text/csv' } });
    } catch (e) { out.textContent = 'Import failed: the box did not answer (' + e.message + ')'; return null; }
    let d = null;
    try { d = await r.json(); } catch (e) { d = null; }
    if (!r.ok) { out.textContent = 'Import failed: ' + ((d && d.error) || ('HTTP ' + r.status)); return null; }
    out.textContent = d.lines + ' lines read: ' + d.new + ' new, ' + d.alreadyPresent + ' already present, ' + d.rejected + ' rejected' +
      (d.gapsFilled && d.gapsFilled.length ? '; ' + d.gapsFilled.length + ' gap' + (d.gapsFilled.length === 1 ? '' : 's') + ' filled' : '') +
      (d.gapsFilled || []).map((x) => '\n  gap ' + localTime(x.downUtc) + ' → ' + localTime(x.upUtc) + ': ' + x.records + ' added').join('') +
      d.rejections.map((x) => '\n  line ' + x.line + ': ' + x.reason).join('');
    return d;
  }
  async function importCsv(ev) {
    ev.preventDefault();
    const file = $('import-file').files[0];
    if (!file) return;
    await importMasterCsv(file, $('import-pbx').value, $('import-gmt').checked, $('import-report'));
    loadStatus();
  }

  // ---- HTTPS certificate (status tab) -------------------------------------------------------
  function showFingerprint(fp, selfSigned) {
    $('https-card').hidden = !fp;
    if (!fp) return;
    $('tls-fp').textContent = fp.match(/../g).join(':');
    if (selfSigned !== undefined) $('tls-kind').textContent = selfSigned ? '(made by this box)' : '(uploaded)';
    $('tls-admin').hidden = state.role !== 'admin';
  }
  async function changeCertificate(method, body) {
    const msg = $('tls-msg');
    msg.className = 'msg'; msg.textContent = 'Saving…';
    try {
      const r = await api('/api/tls', { method, body });
      showFingerprint(r.fingerprint, r.selfSigned);
      msg.className = 'msg ok'; msg.textContent = 'Done: new connections get this certificate. Reload the page to use it.';
    } catch (e) { msg.className = 'msg error'; msg.textContent = e.message; }
  }
  $('tls-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = ev.target;
    changeCertificate('PUT', { certificate: f.certificate.value, key: f.key.value });
  });
  $('tls-new').addEventListener('click', () => { if (confirm('Replace the certificate by a new self-signed one? Browsers will warn again.')) changeCertificate('DELETE'); });

  // ---- calls ------------------------------------------------------------------------------
  function filterQuery(form, withPaging) {
    const q = new URLSearchParams();
    const fd = new FormData(form);
    for (const [k, v] of fd.entries()) {
      if (v === '' || k === 'limit' || k === 'sort') continue;
      q.append(k, (k === 'from' || k === 'to') ? v.replace('T', ' ') : v);
    }
    if (fd.get('sort')) q.set('sort', fd.get('sort'));
    if (withPaging) { q.set('limit', state.limit); q.set('offset', state.offset); }
    return q;
  }
  function downloads() {
    const q = filterQuery($('filters'), false);
    q.delete('sort');
    const box = clear($('downloads'));
    box.append(el('span', { class: 'muted', text: 'Download all matching: ' }));
    const links = [['JSON', 'json', null], ['NDJSON', 'ndjson', null]];
    for (const p of state.profiles) links.push(['CSV ' + p, 'csv', p]);
    for (const [label, fmt, profile] of links) {
      const qq = new URLSearchParams(q);
      if (profile) qq.set('profile', profile);
      // A spreadsheet splits on `;` where the decimal mark is a comma (most of Europe), else `,`.
      if (profile === 'excel') qq.set('separator', (1.5).toLocaleString().includes(',') ? 'semicolon' : 'comma');
      box.append(el('a', { href: '/export.' + fmt + (qq.toString() ? '?' + qq : ''), download: true, text: label }));
    }
  }
  let lastIds = new Set();
  const OUTCOME = { answered: 'answered', missed: 'missed', abandoned: 'abandoned in queue', busy: 'busy', failed: 'failed' };
  // A caller as a person reads it: the CallerID name without Asterisk's quoting; none at all
  // ("" <>) says so instead of showing the raw field.
  function callerCell(name, number) { return name ? name : (number ? '' : 'no caller ID'); }
  // A number with the person behind it ([names] on the box, else the name its extension's
  // CallerID gave): "101 · Анна Петрова".
  function withName(number, name) { return name ? (number ? number + ' · ' + name : name) : (number || ''); }
  function legRow(r) {
    const cls = r.disposition === 'ANSWERED' ? 'ok' : 'bad';
    return el('tr', { class: 'leg', hidden: true },
      el('td', { text: showTime(r.startTime) }), el('td', { text: r.pbx }), el('td', { text: r.sourceName || callerCell(r.callerName, r.source) }),
      el('td', { text: r.source || '(no number)' }), el('td', { text: withName(r.destination, r.destinationName) }),
      el('td', {}, el('span', { class: 'pill ' + cls, text: r.disposition })),
      el('td', { text: hms(r.billableSeconds) }), el('td', { text: hms(r.ringSeconds) }), el('td', { text: r.queue || '' }),
      el('td', {}, withName(r.agent, r.agentName), r.truncated && r.download ? el('a', { href: r.download, download: true, class: 'muted', title: 'This record is too big to list whole', text: ' [cut: whole record]' }) : ''),
      el('td', { class: r.origin && r.origin !== 'ami' ? 'warn' : 'muted', text: (r.origin || 'ami') + ' · ' + r.direction }));
  }
  async function loadCalls(live) {
    state.limit = Number(new FormData($('filters')).get('limit')) || 50;
    const q = filterQuery($('filters'), true);
    let d;
    // The rows without the calls count (a scan of the whole range: seconds on a Pi with a big
    // journal); the count follows from /api/calls/count.
    q.set('counts', 'records');
    try { d = await api('/api/calls?' + q); } catch (e) { showFilterError(e); return; }
    showFilterError(null);
    state.total = d.total;
    // A page of huge records ends early (bytesLimited): the next page starts after what came.
    state.returned = d.records.length;
    // Calls first (what a person counts), records beside them (what the downloads hold). A
    // live refresh keeps the last count on screen until the new one comes.
    if (!live) $('calls-total').textContent = 'counting calls… (' + d.total + ' records)';
    loadCallCount(live);
    const last = Math.min(d.offset + d.records.length, d.total);
    $('page-info').textContent = d.total ? 'records ' + (d.offset + 1) + '–' + last : '';
    $('prev').disabled = d.offset === 0;
    $('next').disabled = last >= d.total;
    const tb = clear($('calls').tBodies[0]);
    const ids = new Set();
    for (const g of d.groups) {
      ids.add(g.key);
      const legs = g.legs.map((i) => legRow(d.records[i]));
      const cls = g.outcome === 'answered' ? 'ok' : 'bad';
      const by = withName(g.answeredBy, g.agentName) + (g.transferredTo ? ' → ' + g.transferredTo : '');
      const toggle = el('button', { type: 'button', class: 'link legs', 'aria-expanded': 'false', title: 'Show the records of this call', text: g.legs.length + (g.legs.length === 1 ? ' record ▸' : ' records ▸') });
      toggle.addEventListener('click', () => {
        const open = toggle.getAttribute('aria-expanded') !== 'true';
        toggle.setAttribute('aria-expanded', String(open));
        toggle.textContent = g.legs.length + (g.legs.length === 1 ? ' record ' : ' records ') + (open ? '▾' : '▸');
        for (const l of legs) l.hidden = !open;
      });
      const tr = el('tr', { class: 'call' + (live && !lastIds.has(g.key) ? ' new' : '') },
        el('td', { text: showTime(d.records[g.legs[0]].startTime) }), el('td', { text: g.pbx }), el('td', { class: 'name', text: g.sourceName || callerCell(g.callerName, g.source) }),
        el('td', { text: g.source || '(no number)' }), el('td', { text: withName(g.destination, g.destinationName) }),
        el('td', {}, el('span', { class: 'pill ' + cls, text: OUTCOME[g.outcome] || g.outcome })),
        el('td', { text: hms(g.talkSeconds) }), el('td', { text: hms(g.waitSeconds) }), el('td', { text: g.queue || '' }),
        el('td', { text: by }), el('td', {}, toggle));
      tb.append(tr, ...legs);
    }
    if (!d.records.length) tb.append(el('tr', {}, el('td', { colspan: 11, class: 'muted', text: 'No calls match.' })));
    labelCells($('calls'));
    lastIds = ids;
    downloads();
  }
  // One count at a time, the newest filter's; live refreshes at most every 10× the last
  // count's own time, so a big journal is not rescanned for every new call.
  const count = { seq: 0, timer: null, at: 0, took: 0 };
  function loadCallCount(live) {
    const q = filterQuery($('filters'), false);
    q.delete('sort');
    const seq = ++count.seq;
    clearTimeout(count.timer);
    const wait = live ? Math.max(0, count.at + 10 * count.took - Date.now()) : 0;
    count.timer = setTimeout(async () => {
      const t0 = Date.now();
      let c;
      try { c = await api('/api/calls/count?' + q); } catch (e) {
        if (seq === count.seq) $('calls-total').textContent = 'calls not counted: ' + e.message;
        return;
      }
      count.at = Date.now();
      count.took = count.at - t0;
      if (seq === count.seq) $('calls-total').textContent = c.calls + ' calls match (' + c.total + ' records)';
    }, wait);
  }
  function showFilterError(e) {
    for (const n of document.querySelectorAll('#filters .ferr')) n.remove();
    if (!e) return;
    const input = e.param && document.querySelector('#filters [name="' + CSS.escape(e.param) + '"]');
    const msg = el('div', { class: 'ferr error', text: e.message });
    if (input) input.closest('label, fieldset').append(msg); else $('filters').append(msg);
  }

  // ---- stats ------------------------------------------------------------------------------
  function today() { const d = new Date(Date.now() + state.tz * 1000); return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()); }
  async function loadStats() {
    const f = $('stats-form');
    if (!f.from.value) f.from.value = today();
    if (!f.to.value) f.to.value = f.from.value;
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(f).entries()) if (v !== '') q.append(k, v);
    let s;
    try { s = await api('/api/stats?' + q); } catch (e) { clear($('stats-kpis')).append(el('p', { class: 'error', text: e.message })); return; }
    clear($('stats-kpis')).append(kpi(s.calls, 'calls'), kpi(s.answered, 'answered calls'), kpi(s.missed, 'missed calls'), kpi(s.cdrs, 'records'), kpi(pct(s.answerRate), 'answer rate'),
      kpi(hms(s.avgTalkSeconds), 'avg talk'), kpi(hms(s.avgRingSeconds), 'avg ring to answer'), kpi(hms(s.avgMissedWaitSeconds), 'avg wait of missed'));
    drawHourly(s.hourly);
    showTrend(s);
    showNumbers(s);
    // Agents by call (offered = calls that rang the agent, however often), with the records
    // that rang them beside (the API's `offered`, kept for scripts).
    const at = clear($('agents').tBodies[0]);
    for (const a of s.agents) at.append(el('tr', {}, el('td', { text: withName(a.agent, a.agentName) }), el('td', { text: a.offeredCalls }), el('td', { text: a.answeredCalls }),
      el('td', { text: pct(a.answerRate) }), el('td', { text: hms(a.talkSeconds) }), el('td', { text: hms(a.avgTalkSeconds) }), el('td', { text: hms(a.avgRingSeconds) }),
      el('td', { class: 'muted', text: a.offered })));
    if (!s.agents.length) at.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No agent calls in this range.' })));
    const qt = clear($('queues').tBodies[0]);
    for (const x of s.queues) qt.append(el('tr', {}, el('td', { text: x.queue }), el('td', { text: x.calls }), el('td', { text: x.answered }), el('td', { text: x.abandoned }),
      el('td', { text: pct(x.serviceLevel) + ' ≤ ' + s.slaSeconds + ' s' }), el('td', { text: pct(x.abandonRate) }), el('td', { text: hms(x.avgWaitSeconds) })));
    if (!s.queues.length) qt.append(el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'No queue calls in this range.' })));
    showAbandonWait(s.queues);
    // Missed inbound calls, newest first, and whether someone called the number back.
    const todo = s.missedInbound - s.calledBack;
    $('missed-summary').textContent = s.missedInbound + ' missed inbound calls, ' + s.calledBack + ' called back within ' + Math.round(s.callbackSeconds / 60) + ' min, ' + todo + ' not called back' + (s.missedTruncated ? ' (too many to track them all)' : '') + '.';
    const mt = clear($('missed').tBodies[0]);
    for (const m of s.missedCalls) mt.append(el('tr', { class: m.calledBackUtc ? null : 'todo' }, el('td', { text: localTime(m.startUtc) }),
      el('td', { text: m.number || '(no number)' }), el('td', { text: m.name }), el('td', { text: OUTCOME[m.outcome] || m.outcome }), el('td', { text: m.queue || '' }),
      el('td', { class: m.calledBackUtc ? 'ok' : 'bad', text: m.calledBackUtc ? localTime(m.calledBackUtc) : 'not yet' })));
    if (!s.missedCalls.length) mt.append(el('tr', {}, el('td', { colspan: 6, class: 'muted', text: 'No missed inbound calls in this range.' })));
    for (const t of ['agents', 'queues', 'missed', 'trend-table', 'top-callers', 'top-destinations', 'abandon-wait']) labelCells($(t));
  }
  // A wait bucket as a person says it: "< 10 s", "30–60 s", "1–2 min", "≥ 2 min" (minutes once
  // the upper bound is past a minute and both bounds are whole minutes).
  function waitLabel(b) {
    const lo = b.minSeconds, hi = b.maxSeconds;
    if (hi === null || hi === undefined) return '≥ ' + (lo > 60 && lo % 60 === 0 ? lo / 60 + ' min' : lo + ' s');
    const min = hi > 60 && hi % 60 === 0 && lo % 60 === 0;
    const n = (s) => min ? s / 60 : s;
    return (lo ? n(lo) + '–' : '< ') + n(hi) + (min ? ' min' : ' s');
  }
  // Per queue, abandoned calls in the API's wait buckets (the columns come from the API, so
  // the page cannot disagree with it about the bounds).
  function showAbandonWait(queues) {
    const table = $('abandon-wait');
    const buckets = (queues[0] && queues[0].abandonedByWait) || [];
    const head = clear(table.tHead.rows[0]);
    head.append(el('th', { text: 'Queue' }), ...buckets.map((b) => el('th', { text: waitLabel(b) })), el('th', { text: 'Abandoned' }));
    const tb = clear(table.tBodies[0]);
    for (const q of queues) tb.append(el('tr', {}, el('td', { text: q.queue }), ...q.abandonedByWait.map((b) => el('td', { text: b.abandoned })), el('td', { text: q.abandoned })));
    if (!queues.length) tb.append(el('tr', {}, el('td', { colspan: buckets.length + 2, class: 'muted', text: 'No queue calls in this range.' })));
  }
  const BUCKET = { hour: 'by hour', day: 'by day', week: 'by week (from Monday)', month: 'by month' };
  // Short axis labels: hours as "10h" (the day under midnight), days "12-01", months "2026-12".
  function shortLabel(bucket, start, i) {
    if (bucket === 'hour') { const h = start.slice(11, 13); return h === '00' || i === 0 ? start.slice(5, 10) : h + 'h'; }
    if (bucket === 'month') return start;
    return start.slice(5, 10);
  }
  function showTrend(s) {
    $('trend-bucket').textContent = BUCKET[s.trendBucket] || s.trendBucket;
    const points = s.trend || [];
    drawBars($('trend'), points.map((p, i) => ({ title: p.start, short: shortLabel(s.trendBucket, p.start, i), answered: p.answered, missed: p.missed })), 'Calls ' + (BUCKET[s.trendBucket] || '') + ': answered and missed');
    const tb = clear($('trend-table').tBodies[0]);
    for (const p of points) tb.append(el('tr', {}, el('td', { text: p.start }), el('td', { text: p.calls }), el('td', { text: p.answered }), el('td', { text: p.missed }), el('td', { text: hms(p.talkSeconds) })));
    if (!points.length) tb.append(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No calls in this range.' })));
  }
  function showNumbers(s) {
    const ct = clear($('top-callers').tBodies[0]);
    for (const n of s.topCallers) ct.append(el('tr', {}, el('td', { text: n.number || '(no number)' }), el('td', { text: n.numberName || callerCell(n.name, n.number) }),
      el('td', { text: n.calls }), el('td', { text: n.answered }), el('td', { text: hms(n.talkSeconds) })));
    if (!s.topCallers.length) ct.append(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No inbound calls in this range.' })));
    const dt = clear($('top-destinations').tBodies[0]);
    for (const n of s.topDestinations) dt.append(el('tr', {}, el('td', { text: n.number ? withName(n.number, n.numberName) : '(no number)' }),
      el('td', { text: n.calls }), el('td', { text: n.answered }), el('td', { text: hms(n.talkSeconds) })));
    if (!s.topDestinations.length) dt.append(el('tr', {}, el('td', { colspan: 4, class: 'muted', text: 'No outbound calls in this range.' })));
    const note = $('numbers-note');
    note.hidden = !s.numbersTruncated;
    note.textContent = s.numbersTruncated ? 'More numbers called than the box counts one by one; the rest are counted together as "(other)".' : '';
  }
  function drawHourly(hours) {
    drawBars($('hourly'), hours.map((h) => ({ title: pad(h.hour) + ':00', short: pad(h.hour), answered: h.answered, missed: h.missed })), 'Calls per hour of day: answered and missed');
  }
  // Stacked bars (answered below, missed above), one per entry; axis labels thinned out so they
  // never overlap, each bar's numbers in its tooltip.
  function drawBars(box, bars, label) {
    const NS = 'http://www.w3.org/2000/svg';
    // Drawn at the box's own width, so labels stay readable on a phone (a 720-wide drawing
    // shrunk to 360 px made them 5 px).
    const W = Math.max(300, Math.min(720, box.clientWidth || 720)), H = 200, padL = 28, padB = 18;
    const n = Math.max(1, bars.length), bw = (W - padL) / n, gap = bw > 6 ? 2 : 0;
    const max = Math.max(1, ...bars.map((b) => b.answered + b.missed));
    const longest = Math.max(1, ...bars.map((b) => b.short.length));
    const every = Math.max(1, Math.ceil((longest * 6 + 6) / bw));
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    const add = (tag, attrs, text) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; svg.append(n); return n; };
    const y = (v) => (H - padB) - v * (H - padB - 8) / max;
    add('text', { x: 0, y: 12 }, String(max));
    add('text', { x: 0, y: H - padB }, '0');
    bars.forEach((b, i) => {
      const x = padL + i * bw + gap;
      const ya = y(b.answered), ym = y(b.answered + b.missed);
      const r1 = add('rect', { x, y: ya, width: Math.max(1, bw - 2 * gap), height: (H - padB) - ya, class: 'answered' });
      r1.append(Object.assign(document.createElementNS(NS, 'title'), { textContent: b.title + ' — ' + b.answered + ' answered' }));
      const r2 = add('rect', { x, y: ym, width: Math.max(1, bw - 2 * gap), height: ya - ym, class: 'missed' });
      r2.append(Object.assign(document.createElementNS(NS, 'title'), { textContent: b.title + ' — ' + b.missed + ' missed' }));
      if (i % every === 0) add('text', { x: x, y: H - 4 }, b.short);
    });
    clear(box).append(svg);
  }

  // ---- setup help -------------------------------------------------------------------------
  async function loadSetup() {
    let d;
    try { d = await api('/api/setup-help'); } catch (e) { return; }
    const ul = clear($('checks'));
    for (const c of d.checks) ul.append(el('li', { class: c.ok === true ? 'ok' : c.ok === false ? 'bad' : 'unknown' }, el('b', { text: c.title }), el('div', { class: 'muted', text: c.detail })));
    const box = clear($('snippets'));
    const snippet = (title, text) => {
      const pre = el('pre', { text });
      const copy = el('button', { type: 'button', class: 'secondary', text: 'Copy' });
      copy.addEventListener('click', () => { if (navigator.clipboard) navigator.clipboard.writeText(text); });
      box.append(el('div', { class: 'card' }, el('h2', { text: title }), pre, copy));
    };
    for (const p of d.pbx) snippet('manager.conf for ' + p.name + ' (' + p.host + ':' + p.port + ')', p.managerConf);
    snippet('cdr_manager.conf', d.cdrManagerConf);
    snippet('cdr.conf', d.cdrConf);
  }

  // ---- live feed --------------------------------------------------------------------------
  let liveTimer = null;
  function startEvents() {
    if (!window.EventSource) return;
    const es = new EventSource('/api/events');
    es.addEventListener('record', () => {
      clearTimeout(liveTimer);
      liveTimer = setTimeout(() => {
        if (state.tab === 'calls' && state.offset === 0) loadCalls(true);
        if (state.tab === 'status') loadStatus();
      }, 300);
    });
    es.addEventListener('error', () => { /* EventSource reconnects by itself */ });
  }
  function banner(text) { const b = $('banner'); b.textContent = text; b.hidden = !text; }
  // What the page scripts loaded after this one (settings.js) share.
  window.cdrbox = { api, el, clear, state, tabs: {}, importMasterCsv };

  // ---- start ------------------------------------------------------------------------------
  async function start() {
    let s;
    try { s = await api('/api/session'); } catch (e) { return; }
    state.csrf = s.csrf; state.role = s.role; if (s.profiles && s.profiles.length) state.profiles = s.profiles;
    $('who').textContent = s.user + (s.role === 'viewer' ? ' (read-only)' : '');
    $('send-test-alarm').addEventListener('click', async () => {
      const msg = $('test-alarm-msg');
      try { await api('/api/alarms/test', { method: 'POST', body: {} }); msg.className = 'msg'; msg.textContent = 'Queued; the result shows here.'; } catch (e) { msg.className = 'msg error'; msg.textContent = e.message; }
    });
    $('oled').addEventListener('load', () => { $('oled-card').hidden = false; });
    $('oled').addEventListener('error', () => { $('oled-card').hidden = true; });
    $('logout').addEventListener('click', async () => { try { await api('/api/logout', { method: 'POST', body: {} }); } finally { location.href = '/login'; } });
    if (window.matchMedia('(min-width: 800px)').matches) $('filter-box').open = true;
    quickRanges($('calls-ranges'), $('filters'), false);
    quickRanges($('stats-ranges'), $('stats-form'), true);
    $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); state.offset = 0; keepInUrl('calls', filterQuery($('filters'), false)); loadCalls(); });
    $('filters').addEventListener('reset', () => setTimeout(() => { state.offset = 0; loadCalls(); }, 0));
    $('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - state.limit); loadCalls(); });
    $('next').addEventListener('click', () => { state.offset += state.returned || state.limit; loadCalls(); });
    $('stats-form').addEventListener('submit', (ev) => { ev.preventDefault(); keepInUrl('stats', new URLSearchParams(Array.from(new FormData($('stats-form'))).filter(([, v]) => v !== ''))); loadStats(); });
    $('import-form').addEventListener('submit', importCsv);
    window.addEventListener('hashchange', showTab);
    setInterval(() => { if (state.tab === 'status' && !document.hidden) loadStatus(); }, 5000);
    setInterval(() => { if (!document.hidden) refreshAlarms(); }, 5000);
    await loadStatus().catch(() => {});
    showTab();
    startEvents();
  }
  start();
})();
