// cdrbox settings page. The form is built from the box's key table (GET /api/config → tables,
// fields: label, unit, group, allowed values, default, live or restart); a key the file leaves
// out shows its default as its value. Saving sends only the fields the user changed (and the
// PBX list with each entry's place in the file), so the file changes in those keys alone.
// Plain JS, no framework; text from the box goes in with textContent, never innerHTML.
'use strict';
(function () {
  const { api, el, clear, state } = window.cdrbox;
  const $ = (id) => document.getElementById(id);
  let cfg = null; // the last GET /api/config answer
  let pbxList = []; // [{ index: place in the file or null (new), values: file values, secretSet, draft }]
  let drafts = {}; // typed but unsaved values of the other tables, by field path, across re-renders
  let nameRows = []; // [names] as the form shows it: [{ number, name }] (a table of free keys)

  // ---- values -----------------------------------------------------------------------------
  const specs = (table) => cfg.fields.filter((f) => f.table === table);
  const specOf = (table, key) => cfg.fields.find((f) => f.table === table && f.key === key);
  const unitText = (spec) => (spec.kind.unit ? ' (' + spec.kind.unit + ')' : '');
  // What the file means for a key: its own value, else the default.
  const shown = (spec, fileValue) => (fileValue === undefined || fileValue === null ? spec.default : fileValue);
  // One text per value, to tell a change from none (a list as its lines, a box as true/false).
  function canon(spec, v) {
    if (v === undefined || v === null) return '';
    if (spec.kind.type === 'bool') return v === true || v === 'true' ? 'true' : 'false';
    if (spec.kind.type === 'list') return (Array.isArray(v) ? v : String(v).split('\n')).map((s) => String(s).trim()).filter((s) => s).join('\n');
    if (spec.kind.type === 'choice') {
      // The file may say 60 for "0x3C", or "MD5" for "md5": show the choice it means.
      const hex = typeof v === 'number' ? '0x' + v.toString(16).toUpperCase().padStart(2, '0') : null;
      const same = spec.kind.choices.find((c) => c === hex || c.toLowerCase() === String(v).trim().toLowerCase());
      if (same) return same;
    }
    return String(v);
  }
  const inputText = (input) => (input.type === 'checkbox' ? (input.checked ? 'true' : 'false') : input.value);
  function valueToSend(spec, input) {
    const t = spec.kind.type;
    if (t === 'bool') return input.checked;
    if (t === 'list') return input.value.split('\n').map((s) => s.trim()).filter((s) => s);
    if (t === 'int') return /^-?\d+$/.test(input.value.trim()) ? Number(input.value.trim()) : input.value;
    return input.value;
  }

  // Help text is plain text; `code` spans become <code>, nothing else is markup.
  function richText(cls, text) {
    const n = el('small', { class: cls });
    String(text || '').split('`').forEach((part, i) => n.append(i % 2 ? el('code', { text: part }) : part));
    return n;
  }
  function defaultText(spec) {
    const d = spec.default;
    if (spec.kind.type === 'secret' || d === null || d === undefined) return null;
    if (spec.kind.type === 'bool') return d ? 'on' : 'off';
    if (spec.kind.type === 'list') return d.length ? d.join(', ') : 'none';
    return String(d) + (spec.kind.unit ? ' ' + spec.kind.unit : '');
  }
  function hintText(spec) {
    const parts = [];
    if (spec.required) parts.push('Required');
    if (spec.allowed && spec.kind.type !== 'bool' && spec.kind.type !== 'choice') parts.push('Allowed ' + spec.allowed);
    const d = defaultText(spec);
    if (d !== null && !spec.required) parts.push('Default ' + d);
    if (spec.apply === 'restart') parts.push('applies after a restart');
    return parts.join(' · ');
  }

  // ---- inline checks (the box checks again; these only say it sooner, in the same words) --
  function problemOf(spec, input, entry) {
    const t = spec.kind.type, v = input.value.trim();
    if (t === 'int') {
      if (!/^-?\d+$/.test(v)) return 'Enter a whole number (allowed ' + spec.allowed + ').';
      const n = Number(v);
      if (n < spec.kind.min || n > spec.kind.max) return n + ' is out of range (allowed ' + spec.allowed + ').';
    }
    if (spec.required && v === '') return 'Required.';
    if (t === 'addr' && v !== '' && !/^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):\d{1,5}$/.test(v)) return 'An address and port, e.g. 0.0.0.0:80 or 127.0.0.1:8080.';
    if (t === 'secret' && entry && v === '') { const why = secretNeeded(entry); if (why) return why; }
    return '';
  }
  // A stored secret goes only where it was entered for: a new address or plain login asks again.
  function secretNeeded(entry) {
    if (entry.index === null || !entry.secretSet) return '';
    const now = (key) => { const i = entry.inputs && entry.inputs[key]; return i ? inputText(i).trim() : ''; };
    const was = (key) => canon(specOf('pbx', key), shown(specOf('pbx', key), entry.values[key])).trim();
    if (now('host') !== was('host')) return 'Enter the secret again: the address changed, and the stored secret is only sent to the PBX it was entered for.';
    if (now('auth') === 'plain' && was('auth') !== 'plain') return 'Enter the secret again: "plain" sends it in clear text, which the stored secret was not entered for.';
    return '';
  }
  function showProblem(wrap, text) {
    const err = wrap.querySelector('.ferr');
    err.textContent = text;
    err.hidden = !text;
    wrap.classList.toggle('has-error', !!text);
  }
  function check(input) {
    const wrap = input.closest('.field');
    const msg = problemOf(input._spec, input, input._entry);
    showProblem(wrap, msg);
    return msg;
  }

  // ---- the form ---------------------------------------------------------------------------
  let uid = 0;
  function field(spec, fileValue, path, entry) {
    const t = spec.kind.type;
    const value = shown(spec, fileValue);
    const id = 'set-' + (++uid);
    let input;
    if (t === 'bool') { input = el('input', { type: 'checkbox', id }); input.checked = value === true; }
    else if (t === 'choice') {
      input = el('select', { id });
      for (const c of spec.kind.choices) input.append(el('option', { value: c, text: c }));
      input.value = canon(spec, value);
    } else if (t === 'list') { input = el('textarea', { id, rows: 3, spellcheck: 'false' }); input.value = canon(spec, value); }
    else if (t === 'secret') {
      input = el('input', { id, type: 'password', autocomplete: 'new-password', placeholder: entry && entry.secretSet ? 'stored — leave empty to keep it' : 'not set' });
    } else if (t === 'int') { input = el('input', { id, type: 'text', inputmode: 'numeric' }); input.value = canon(spec, value); }
    else { input = el('input', { id, type: 'text', spellcheck: 'false' }); input.value = canon(spec, value); }
    input.dataset.field = path;
    input.dataset.kind = t;
    input.dataset.initial = t === 'secret' ? '' : canon(spec, value);
    input._spec = spec;
    input._entry = entry || null;
    const draft = entry ? entry.draft[spec.key] : drafts[path];
    if (draft !== undefined) { if (t === 'bool') input.checked = draft === 'true'; else input.value = draft; }
    if (entry) entry.inputs[spec.key] = input;
    if (state.role !== 'admin') input.disabled = true;
    input.addEventListener('input', () => { check(input); if (entry && (spec.key === 'host' || spec.key === 'auth')) { const s = entry.inputs.secret; if (s) check(s); } });
    input.addEventListener('change', () => check(input));
    const label = el('label', { for: id, text: spec.label + unitText(spec) });
    const wrap = el('div', { class: 'field' + (t === 'bool' ? ' field-bool' : '') + (spec.apply === 'restart' ? ' needs-restart' : '') });
    if (t === 'bool') wrap.append(el('div', { class: 'bool-row' }, input, label)); else wrap.append(label, input);
    const hint = hintText(spec);
    if (hint) wrap.append(el('small', { class: 'hint', text: hint }));
    wrap.append(richText('help', spec.help), el('code', { class: 'key', text: path }), el('span', { class: 'ferr', role: 'alert', hidden: true }));
    return wrap;
  }

  // Fields grouped under headings; rarely changed ones folded away under "Advanced".
  function groups(table, values, prefix, entry, title) {
    const box = el('div', {});
    const mine = specs(table);
    const names = [];
    for (const f of mine) if (!names.includes(f.group)) names.push(f.group);
    const adv = el('details', { class: 'advanced' }, el('summary', { text: 'Advanced' }));
    for (const g of names) {
      for (const advanced of [false, true]) {
        const list = mine.filter((f) => f.group === g && !!f.advanced === advanced);
        if (!list.length) continue;
        const grid = el('div', { class: 'settings-grid' });
        for (const f of list) grid.append(field(f, values[f.key], prefix + f.key, entry));
        // A group named like its table needs no heading of its own.
        const same = !advanced && g.toLowerCase() === String(title || '').toLowerCase();
        const part = same ? el('div', { class: 'group' }, grid) : el('fieldset', { class: 'group' }, el('legend', { text: g }), grid);
        (advanced ? adv : box).append(part);
      }
    }
    if (adv.children.length > 1) box.append(adv);
    return box;
  }

  function captureDrafts() {
    for (const input of document.querySelectorAll('#settings-form [data-field]')) {
      const text = inputText(input);
      if (input._entry) input._entry.draft[input._spec.key] = text; else drafts[input.dataset.field] = text;
    }
  }

  function render() {
    const form = clear($('settings-form'));
    const admin = state.role === 'admin';
    form.append(restartCard());
    for (const table of cfg.tables) {
      const card = el('div', { class: 'card settings-card' }, el('h2', { text: table.title }));
      if (table.array) {
        pbxList.forEach((entry, pos) => {
          entry.inputs = {};
          const title = entry.values.name || entry.draft.name || 'New PBX';
          const off = canon(specOf('pbx', 'enabled'), shown(specOf('pbx', 'enabled'), entry.values.enabled)) === 'false';
          const head = el('h3', { text: title + (off ? ' — recording is off' : '') });
          const rm = el('button', { type: 'button', class: 'secondary danger', text: 'Remove this PBX…' });
          rm.disabled = !admin;
          rm.addEventListener('click', () => {
            const name = (entry.inputs.name && entry.inputs.name.value) || title;
            const question = entry.index === null
              ? 'Discard the new PBX “' + name + '”?'
              : 'Remove PBX “' + name + '”? Calls from it are no longer recorded once you save, and an alarm says so until the box restarts.';
            if (!window.confirm(question)) return;
            captureDrafts();
            pbxList.splice(pos, 1);
            render();
            setMsg('warn', 'PBX “' + name + '” will be removed when you save.');
          });
          card.append(el('section', { class: 'pbx' }, head, groups('pbx', entry.values, 'pbx[' + pos + '].', entry), importBox(entry), el('p', {}, rm)));
        });
        if (!pbxList.length) card.append(el('p', { class: 'muted', text: 'No PBX configured: nothing is recorded until one is added.' }));
        const add = el('button', { type: 'button', class: 'secondary', text: '+ Add a PBX' });
        add.disabled = !admin;
        add.addEventListener('click', () => {
          captureDrafts();
          pbxList.push({ index: null, values: {}, secretSet: false, draft: { name: 'pbx' + (pbxList.length + 1) }, inputs: {} });
          render();
        });
        card.append(el('p', {}, add));
      } else if (table.map) {
        card.append(namesTable(table));
      } else {
        card.append(groups(table.name, cfg.config[table.name] || {}, table.name + '.', null, table.title));
      }
      form.append(card);
    }
    const save = el('button', { type: 'submit', text: 'Save' });
    save.disabled = !admin;
    form.append(el('div', { class: 'sticky-save' }, save, el('span', { id: 'settings-msg', class: 'msg' })));
  }

  // ---- [names]: rows of number = name ------------------------------------------------------
  // The same checks as the box (it checks again): a number and a name on every row, a name of
  // at most 64 characters, no number twice once spaces and dashes are dropped.
  const normNumber = (n) => String(n).replace(/[\s()-]/g, '');
  function rowProblem(i) {
    const r = nameRows[i], number = normNumber(r.number), name = r.name.trim();
    if (!number) return ['number', 'Write the extension or number, e.g. 101.'];
    if (!/^[0-9A-Za-z+*#_]+$/.test(number)) return ['number', 'Digits, letters, + * # and _ only.'];
    if (nameRows.slice(0, i).some((o) => normNumber(o.number) === number)) return ['number', 'Number ' + number + ' is given twice: keep one.'];
    if (!name) return ['name', 'The name is empty: write the person\'s name, or remove the row.'];
    if ([...name].length > 64) return ['name', 'The name is too long (' + [...name].length + ' characters, at most 64).'];
    return null;
  }
  function namesTable(table) {
    const m = table.map, admin = state.role === 'admin';
    const box = el('div', { class: 'names', id: 'names-table' }, richText('help', m.help));
    const list = el('div', { class: 'names-rows' });
    nameRows.forEach((r, i) => {
      const num = el('input', { type: 'text', class: 'names-number', 'aria-label': m.keyLabel + ' ' + (i + 1), inputmode: 'tel', spellcheck: 'false', placeholder: 'e.g. 101' });
      const name = el('input', { type: 'text', class: 'names-name', 'aria-label': m.valueLabel + ' ' + (i + 1), placeholder: 'the person’s name' });
      num.value = r.number; name.value = r.name;
      num.disabled = name.disabled = !admin;
      num.addEventListener('input', () => { r.number = num.value; });
      name.addEventListener('input', () => { r.name = name.value; });
      const rm = el('button', { type: 'button', class: 'secondary danger names-remove', text: 'Remove…' });
      rm.disabled = !admin;
      rm.addEventListener('click', () => {
        const who = (r.name.trim() || 'no name') + ' (' + (r.number.trim() || 'no number') + ')';
        if (!window.confirm('Remove ' + who + ' from the names? Its calls then show the CallerID name, if any, once you save.')) return;
        nameRows.splice(i, 1);
        render();
        setMsg('warn', who + ' will be removed when you save.');
      });
      const row = el('div', { class: 'names-row field', 'data-names-row': String(i) },
        el('label', { class: 'names-cell' }, el('span', { text: m.keyLabel }), num),
        el('label', { class: 'names-cell' }, el('span', { text: m.valueLabel }), name), rm,
        el('span', { class: 'ferr', role: 'alert', hidden: true }));
      list.append(row);
    });
    if (!nameRows.length) list.append(el('p', { class: 'muted', text: 'No names yet: calls show the CallerID name their phones send.' }));
    const add = el('button', { type: 'button', class: 'secondary', id: 'names-add', text: '+ Add a name' });
    add.disabled = !admin || nameRows.length >= m.maxEntries;
    add.addEventListener('click', () => {
      captureDrafts();
      nameRows.push({ number: '', name: '' });
      render();
      const rows = document.querySelectorAll('#names-table .names-number');
      if (rows.length) rows[rows.length - 1].focus();
    });
    box.append(list, el('p', {}, add));
    return box;
  }
  function namesRowsOfFile() { return Object.entries(cfg.config.names || {}).map(([number, name]) => ({ number, name: String(name) })); }
  function namesChanged() {
    const was = namesRowsOfFile();
    return was.length !== nameRows.length || was.some((r, i) => r.number !== nameRows[i].number || r.name !== nameRows[i].name);
  }
  function showRowProblem(i, which, text) {
    const row = document.querySelector('#names-table [data-names-row="' + i + '"]');
    if (!row) return null;
    showProblem(row, text);
    return row.querySelector(which === 'name' ? '.names-name' : '.names-number');
  }

  // Filling this PBX's gaps from its Master.csv (admin only; the same upload and report as the
  // status page's gap card, window.cdrbox.importMasterCsv). Only for a PBX already saved under
  // its name: the box imports for the PBXs it runs. Not a form of its own (forms do not nest):
  // the button is type=button and the file input has no data-field, so Save never sees them.
  function importBox(entry) {
    const name = entry.values.name;
    if (state.role !== 'admin' || entry.index === null || !name) return null;
    const id = 'pbx-import-' + (++uid);
    const file = el('input', { type: 'file', id, class: 'pbx-import-file', accept: '.csv,text/csv' });
    const gmt = el('input', { type: 'checkbox', class: 'pbx-import-gmt' });
    const go = el('button', { type: 'button', class: 'secondary pbx-import-go', text: 'Import' });
    const report = el('pre', { class: 'pbx-import-report muted', 'aria-live': 'polite' });
    go.addEventListener('click', async () => {
      const f = file.files[0];
      if (!f) { report.textContent = 'Choose the Master.csv file first (on the PBX: /var/log/asterisk/cdr-csv/Master.csv).'; return; }
      go.disabled = true;
      try { await window.cdrbox.importMasterCsv(f, name, gmt.checked, report); } finally { go.disabled = false; }
    });
    return el('fieldset', { class: 'group pbx-import', 'data-import-pbx': name },
      el('legend', { text: 'Fill the gaps from Master.csv' }),
      el('p', { class: 'muted', text: 'Calls this PBX logged in its Master.csv (cdr_csv) while the box was off or cut off; calls already recorded are not added twice.' }),
      el('div', { class: 'filters' }, el('label', { for: id, text: 'Master.csv of ' + name }), file,
        el('label', { class: 'inline' }, gmt, ' times in GMT (usegmtime=yes)'), go),
      report);
  }

  // Saved changes that wait for a restart, and the button that does it.
  function restartCard() {
    const pending = (cfg.restart && cfg.restart.pending) || [];
    const card = el('div', { class: 'card restart-card', id: 'settings-restart', hidden: !pending.length });
    if (!pending.length) return card;
    const names = pending.map((p) => p.label + ' (' + p.field + ')').join(', ');
    const btn = el('button', { type: 'button', id: 'restart-now', text: 'Restart now' });
    btn.disabled = state.role !== 'admin';
    btn.addEventListener('click', restart);
    card.append(el('p', {}, el('b', { text: 'Saved, not yet in effect: ' }), names + '. These settings take effect when the box restarts (recording pauses for a few seconds; you will need to log in again).'), btn, el('span', { id: 'restart-msg', class: 'msg' }));
    return card;
  }
  async function restart() {
    if (!window.confirm('Restart the box now? Recording pauses for a few seconds and you will be asked to log in again.')) return;
    const msg = $('restart-msg');
    try { await api('/api/restart', { method: 'POST', body: {} }); } catch (e) { msg.className = 'msg error'; msg.textContent = e.message; return; }
    msg.className = 'msg'; msg.textContent = 'Restarting…';
    // The page reconnects by itself once the box is back: sessions do not survive a restart,
    // so "back" is a 401, or any answer after the box was seen gone.
    const started = Date.now();
    let gone = false;
    const poll = async () => {
      try {
        const r = await fetch('/api/session', { headers: { 'X-Requested-With': 'cdrbox' }, credentials: 'same-origin' });
        if (r.status === 401 || (gone && r.ok)) { location.reload(); return; }
      } catch (e) { gone = true; }
      if (Date.now() - started > 120000) { msg.className = 'msg error'; msg.textContent = 'The box has not come back after 2 minutes: check its display or the service log.'; return; }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 1500);
  }

  function setMsg(cls, text) { const m = $('settings-msg'); if (m) { m.className = 'msg ' + cls; m.textContent = text; } }

  // ---- load and save ------------------------------------------------------------------------
  function adopt(answer) {
    cfg = answer;
    drafts = {};
    pbxList = (cfg.config.pbx || []).map((values, i) => ({ index: i, values, secretSet: !!cfg.secretSet[i], draft: {}, inputs: {} }));
    nameRows = namesRowsOfFile();
  }
  async function load() {
    try { adopt(await api('/api/config')); } catch (e) { clear($('settings-form')).append(el('p', { class: 'error', text: e.message })); return; }
    render();
    $('pw-form').hidden = state.role !== 'admin';
  }

  // Only what changed: every other key of the file stays exactly as it is.
  function changes() {
    const out = {}, pbx = pbxList.map(() => ({}));
    let pbxChanged = pbxList.length !== (cfg.config.pbx || []).length || pbxList.some((p, i) => p.index !== i);
    for (const input of document.querySelectorAll('#settings-form [data-field]')) {
      const spec = input._spec, entry = input._entry;
      const now = spec.kind.type === 'secret' ? input.value : canon(spec, inputText(input));
      const isNew = entry && entry.index === null;
      if (now === input.dataset.initial && !(isNew && now !== '')) continue;
      const v = valueToSend(spec, input);
      if (entry) { pbx[pbxList.indexOf(entry)][spec.key] = v; pbxChanged = true; }
      else { (out[spec.table] = out[spec.table] || {})[spec.key] = v; }
    }
    if (pbxChanged) out.pbx = pbxList.map((p, i) => Object.assign({ _index: p.index }, pbx[i]));
    // [names] goes whole: the box keeps the lines that did not change as they are.
    if (cfg.tables.some((t) => t.name === 'names') && namesChanged()) out.names = nameRows.map((r) => ({ number: r.number, name: r.name }));
    return out;
  }

  async function save(ev) {
    ev.preventDefault();
    const inputs = [...document.querySelectorAll('#settings-form [data-field]')];
    const bad = inputs.filter((i) => check(i));
    if (bad.length) {
      const first = bad[0], where = first._entry ? ' (' + (first._entry.values.name || 'new PBX') + ')' : '';
      setMsg('error', 'Not saved: ' + first._spec.label + where + ' — ' + problemOf(first._spec, first, first._entry) + (bad.length > 1 ? ' (and ' + (bad.length - 1) + ' more marked in red)' : ''));
      first.focus();
      return;
    }
    for (const row of document.querySelectorAll('#names-table [data-names-row]')) showProblem(row, '');
    for (let i = 0; i < nameRows.length; i++) {
      const p = rowProblem(i);
      if (!p) continue;
      const input = showRowProblem(i, p[0], p[1]);
      setMsg('error', 'Not saved: names, row ' + (i + 1) + ' — ' + p[1]);
      if (input) input.focus();
      return;
    }
    const body = changes();
    if (!Object.keys(body).length) { setMsg('', 'Nothing changed.'); return; }
    // Switching a PBX off stops its recording: ask first.
    for (const entry of pbxList) {
      const en = entry.inputs.enabled;
      if (entry.index !== null && en && en.dataset.initial === 'true' && !en.checked) {
        const name = entry.values.name || 'this PBX';
        if (!window.confirm('Stop recording calls from PBX “' + name + '”? Nothing from it is logged while it is off, and an alarm says so on the page and the display.')) { setMsg('', 'Not saved: PBX “' + name + '” keeps recording.'); return; }
      }
    }
    setMsg('', 'Saving…');
    let answer;
    try { answer = await api('/api/config', { method: 'PUT', body: { config: body } }); } catch (e) { showSaveError(e); return; }
    adopt(answer);
    render();
    const touched = [];
    for (const [table, keys] of Object.entries(body)) if (table !== 'pbx') for (const k of Object.keys(keys)) touched.push(table + '.' + k);
    // A [[pbx]] entry's keys are named by its place in the saved list, as the box's pending
    // list names them (pbx[0].cdr_db_table).
    (body.pbx || []).forEach((entry, i) => { for (const k of Object.keys(entry)) if (k !== '_index') touched.push('pbx[' + i + '].' + k); });
    const later = ((cfg.restart && cfg.restart.pending) || []).filter((p) => touched.includes(p.field));
    if (later.length) setMsg('warn', 'Saved. ' + later.map((p) => p.label).join(', ') + ' take' + (later.length === 1 ? 's' : '') + ' effect after a restart (button above).');
    else setMsg('ok', 'Saved and applied.');
  }
  function showSaveError(e) {
    const name = e.param || '';
    const detail = e.detail || e.message.replace(name + ': ', '');
    const row = /^names\[(\d+)\]\.(number|name)$/.exec(name);
    if (row) {
      const input = showRowProblem(Number(row[1]), row[2], detail);
      if (input) input.focus();
      setMsg('error', 'Not saved: names, row ' + (Number(row[1]) + 1) + ' — ' + detail);
      return;
    }
    const input = document.querySelector('#settings-form [data-field="' + CSS.escape(name.replace(/\[\d+\]$/, '')) + '"]');
    if (input) {
      showProblem(input.closest('.field'), detail);
      input.focus();
      setMsg('error', 'Not saved: ' + input._spec.label + (input._entry ? ' (' + (input._entry.values.name || 'new PBX') + ')' : '') + ' — ' + detail);
    } else {
      setMsg('error', 'Not saved: ' + e.message);
    }
  }

  async function changePassword(ev) {
    ev.preventDefault();
    const f = ev.target, msg = $('pw-msg');
    try {
      await api('/api/password', { method: 'POST', body: { user: f.user.value, current: f.current.value, password: f.password.value } });
      msg.className = 'msg ok'; msg.textContent = 'Password changed.'; f.reset();
    } catch (e) { msg.className = 'msg error'; msg.textContent = e.message; }
  }

  window.cdrbox.tabs.settings = load;
  $('settings-form').addEventListener('submit', save);
  $('pw-form').addEventListener('submit', changePassword);
})();
