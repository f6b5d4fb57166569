// parkwatch dashboard. Plain JavaScript, no dependencies, no network access
// beyond this server. Every URL is relative to the page (/debug/tasks), so the
// dashboard also works when the router is mounted under a prefix.
'use strict';

(function () {
  // ------------------------------------------------------------- helpers
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  /** Makes an element: h('a', {class: 'x', href: '#', onclick: f}, 'text', child). */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }
  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }
  const fmtN = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
  function fmtDur(sec) {
    if (sec === null || sec === undefined) return '—';
    if (sec < 1) return Math.round(sec * 1000) + ' ms';
    if (sec < 60) return sec.toFixed(1) + ' s';
    const m = Math.floor(sec / 60);
    if (sec < 3600) return m + ' min ' + String(Math.floor(sec % 60)).padStart(2, '0') + ' s';
    const hr = Math.floor(sec / 3600);
    return hr + ' h ' + String(m % 60).padStart(2, '0') + ' min';
  }
  const plural = (n, one, many) => fmtN(n) + ' ' + (n === 1 ? one : many || one + 's');
  const taskLabel = (id, name) => 'task ' + id + (name ? ' “' + name + '”' : '');

  // ------------------------------------------------------------- state
  const st = {
    tab: 'tasks',
    q: '',
    state: '',
    reason: '',
    infindings: false,
    group: false,
    finding: null,
    stack: null,
    sort: '',
    offset: 0,
    limit: 100,
    task: null,
    groupSel: null,
    paused: false,
    interval: 5000,
    gscope: 'all',
    gmax: 400,
    flFilter: false,
    allFindings: false,
  };
  let last = null; // the last /debug/tasks.json answer
  let seq = 0; // request counter: answers to older requests are dropped
  let timer = null;
  let lastGroups = new Map();

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    st.tab = ['tasks', 'graph', 'flame'].includes(p.get('tab')) ? p.get('tab') : 'tasks';
    st.q = p.get('q') || '';
    st.state = p.get('state') || '';
    st.reason = p.get('reason') || '';
    st.infindings = p.get('in_findings') === '1';
    st.group = p.get('group') === 'stack';
    st.finding = p.has('finding') ? Number(p.get('finding')) : null;
    st.stack = p.get('stack');
    st.sort = p.get('sort') || '';
    st.offset = Math.max(0, Number(p.get('offset')) || 0);
    st.limit = [50, 100, 250, 500, 1000].includes(Number(p.get('limit'))) ? Number(p.get('limit')) : 100;
    st.task = p.has('task') ? Number(p.get('task')) : null;
    st.paused = p.get('paused') === '1';
  }
  function writeHash() {
    const p = new URLSearchParams();
    if (st.tab !== 'tasks') p.set('tab', st.tab);
    filterParams(p);
    if (st.group) p.set('group', 'stack');
    if (st.sort) p.set('sort', st.sort);
    if (st.offset) p.set('offset', st.offset);
    if (st.limit !== 100) p.set('limit', st.limit);
    if (st.task !== null) p.set('task', st.task);
    if (st.paused) p.set('paused', '1');
    const hash = p.toString();
    history.replaceState(null, '', hash ? '#' + hash : location.pathname + location.search);
  }
  function filterParams(p) {
    if (st.q) p.set('q', st.q);
    if (st.state) p.set('state', st.state);
    if (st.reason) p.set('reason', st.reason);
    if (st.infindings) p.set('in_findings', '1');
    if (st.finding !== null) p.set('finding', st.finding);
    if (st.stack) p.set('stack', st.stack);
    return p;
  }
  function listParams() {
    const p = filterParams(new URLSearchParams());
    if (st.group) p.set('group', 'stack');
    if (st.sort) p.set('sort', st.sort);
    p.set('offset', st.offset);
    p.set('limit', st.limit);
    return p.toString();
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    const text = await r.text();
    if (!r.ok) {
      const e = new Error(text.trim() || r.status + ' ' + r.statusText);
      e.status = r.status;
      throw e;
    }
    return JSON.parse(text);
  }

  // ------------------------------------------------------------- status and refresh
  function setStatus(kind, text) {
    const el = $('status');
    el.className = 'status ' + kind;
    el.textContent = text;
  }
  function showBanner(msg) {
    const b = $('banner');
    b.textContent = msg;
    b.hidden = false;
  }
  function hideBanner() {
    $('banner').hidden = true;
  }
  function showError(e) {
    if (e.status === 401) {
      showBanner('This server requires a token. Open this page once as …/debug/tasks?token=<token> (the token is then kept in a cookie).');
    } else if (e.status === 400) {
      showBanner(e.message);
    } else {
      showBanner('Cannot reach the server: ' + e.message + ' — retrying.');
    }
    setStatus('error', 'offline');
  }
  function updateStatus() {
    if (!last) return;
    const t = new Date(last.taken_at).toLocaleTimeString();
    if (st.paused) setStatus('paused', 'Paused · snapshot ' + t);
    else setStatus('live', 'Live · ' + t);
    $('taken').textContent = 'Snapshot ' + new Date(last.taken_at).toLocaleString() + ' · taken and analysed in ' + last.elapsed_ms.toFixed(1) + ' ms';
  }

  async function refresh() {
    const my = ++seq;
    let data;
    try {
      data = await getJSON('tasks.json?' + listParams());
    } catch (e) {
      if (my === seq) showError(e);
      return;
    }
    if (my !== seq) return;
    if (data.total > 0 && st.offset >= data.total) {
      st.offset = Math.floor((data.total - 1) / st.limit) * st.limit;
      writeHash();
      return refresh();
    }
    last = data;
    hideBanner();
    renderSummary(data);
    renderFindings(data);
    renderTable(data);
    updateStatus();
    if (st.task !== null) loadDetail(st.task, true);
    else if (st.groupSel) refreshGroupDrawer();
    if (st.tab === 'graph') loadGraph(false);
    if (st.tab === 'flame') loadFlame();
  }

  function schedule() {
    clearTimeout(timer);
    if (st.paused) return;
    timer = setTimeout(async () => {
      if (!document.hidden) await refresh();
      schedule();
    }, st.interval);
  }
  function setPaused(p) {
    st.paused = p;
    $('pause').textContent = p ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(p));
    writeHash();
    updateStatus();
    if (!p) refresh();
    schedule();
  }
  /** A filter or page changed: back to a fresh answer now. */
  function changed(resetOffset) {
    if (resetOffset) st.offset = 0;
    writeHash();
    syncControls();
    refresh();
    schedule();
  }

  // ------------------------------------------------------------- summary
  function card(label, value, note, cls, onclick, title) {
    return h('div', { class: 'card' + (cls ? ' ' + cls : '') + (onclick ? ' clickable' : ''), onclick, title },
      h('div', { class: 'label', text: label }),
      h('div', { class: 'value', text: value }),
      h('div', { class: 'note', text: note || '\u00a0' }));
  }
  function renderSummary(d) {
    const sm = d.summary;
    const byState = sm.by_state;
    const stateFilter = (v) => () => { st.state = st.state === v ? '' : v; st.reason = ''; changed(true); };
    const cards = [
      card('Tasks', fmtN(sm.total), plural(sm.resources, 'resource') + ' waited on', '', () => {
        st.state = ''; st.reason = ''; st.q = ''; st.finding = null; st.stack = null; st.infindings = false; changed(true);
      }),
      card('Running', fmtN(byState.running + byState.runnable), fmtN(byState.runnable) + ' runnable', byState.running + byState.runnable ? 'good' : '', stateFilter('running')),
      card('Parked', fmtN(byState.parked), 'on channels, locks, timers', '', stateFilter('parked')),
      card('External wait', fmtN(byState.external), 'I/O, foreign futures', '', stateFilter('external')),
      card(sm.global_deadlock ? 'Global deadlock' : 'Deadlocks', fmtN(sm.deadlocks), plural(sm.deadlocked_tasks, 'task') + ' stuck', sm.deadlocks ? 'bad' : 'good', () => $('findings-title').scrollIntoView({ behavior: 'smooth' })),
      card('Leak suspects', fmtN(sm.leaked_tasks), plural(sm.leaks, 'site'), sm.leaked_tasks ? 'warn' : 'good', () => $('findings-title').scrollIntoView({ behavior: 'smooth' })),
      card('Oldest park', fmtDur(sm.oldest_park), sm.oldest_park_task !== null ? 'task ' + sm.oldest_park_task : '', '', sm.oldest_park_task !== null ? () => selectTask(sm.oldest_park_task) : null),
    ];
    clear($('summary')).append(...cards);

    const reasons = clear($('reasons'));
    if (sm.by_reason.length) reasons.append(h('span', { class: 'lead', text: 'Parked on' }));
    for (const r of sm.by_reason) {
      reasons.append(h('a', {
        class: 'chip' + (st.reason === r.reason ? ' on' : ''), href: '#', title: 'Filter the table by this wait reason',
        onclick: (e) => { e.preventDefault(); st.reason = st.reason === r.reason ? '' : r.reason; changed(true); },
      }, r.reason, ' ', h('b', { text: fmtN(r.count) })));
    }
    // The reason filter offers the reasons present now (and the one selected).
    const sel = $('reason');
    const want = ['', ...sm.by_reason.map((r) => r.reason)];
    if (st.reason && !want.includes(st.reason)) want.push(st.reason);
    const have = Array.from(sel.options).map((o) => o.value);
    if (want.join('\n') !== have.join('\n')) {
      clear(sel);
      for (const v of want) sel.append(h('option', { value: v, text: v || 'All wait reasons' }));
    }
    sel.value = st.reason;
  }

  // ------------------------------------------------------------- findings
  const LINK_RE = /task (\d+)(?: "((?:[^"\\]|\\.)*)")?|((?:[\w.\-~]*\/)*[\w.\-]+\.rs:\d+)/g;

  /** Text with "task N" turned into links and file:line into code. */
  function linkify(text) {
    const out = [];
    let at = 0;
    for (const m of text.matchAll(LINK_RE)) {
      if (m.index > at) out.push(text.slice(at, m.index));
      if (m[1]) {
        const id = Number(m[1]);
        out.push(h('a', { class: 'tasklink', href: '#', title: 'Show this task', onclick: (e) => { e.preventDefault(); selectTask(id); } }, taskLabel(id, m[2])));
      } else {
        out.push(h('code', { class: 'loc', text: m[3] }));
      }
      at = m.index + m[0].length;
    }
    if (at < text.length) out.push(text.slice(at));
    return out;
  }
  /** An explanation as a lead sentence and a list of facts. */
  function explain(text) {
    const cut = text.indexOf('. ');
    const colon = text.indexOf(': ');
    let lead = text;
    let rest = '';
    if (cut > 0 && cut < text.length - 2) {
      lead = text.slice(0, cut + 1);
      rest = text.slice(cut + 2);
    } else if (colon > 0 && text.includes('; ')) {
      lead = text.slice(0, colon + 1);
      rest = text.slice(colon + 2);
    }
    const items = rest.split(/;\s+|\.\s+(?=\S)/).map((x) => x.trim().replace(/\.$/, '')).filter(Boolean);
    return [h('div', { class: 'lead' }, linkify(lead)), items.length ? h('ul', {}, items.map((i) => h('li', {}, linkify(i)))) : null];
  }
  function renderFindings(d) {
    const box = clear($('findings'));
    const total = d.findings_total;
    $('findings-count').textContent = total ? '· ' + fmtN(total) : '';
    if (!total) {
      box.append(h('div', { class: 'ok', text: 'No deadlocks and no leak suspects among ' + plural(d.summary.total, 'task') + '.' }));
      return;
    }
    const shown = st.allFindings ? d.findings : d.findings.slice(0, 6);
    for (const f of shown) {
      const cls = 'finding ' + f.certainty + (f.severity === 'leak' ? ' leak' : '');
      const chips = f.tasks.slice(0, 12).map((t) =>
        h('a', { class: 'tasklink', href: '#', title: t.state_word ? 'parked in ' + t.state_word : 'exited', onclick: (e) => { e.preventDefault(); selectTask(t.id); } }, taskLabel(t.id, t.name)));
      box.append(h('article', { class: cls, 'data-kind': f.kind },
        h('div', { class: 'head' },
          h('span', { class: 'title', text: f.title }),
          h('span', { class: 'badge ' + f.certainty, text: f.certainty }),
          h('span', { class: 'muted', text: plural(f.task_count, 'task') + (f.resources.length ? ' · ' + f.resources.slice(0, 4).join(', ') + (f.resources.length > 4 ? ', …' : '') : '') }),
          f.site ? h('code', { class: 'loc', text: f.site }) : null),
        h('div', { class: 'body' },
          explain(f.explanation),
          h('div', { class: 'tasks' }, chips,
            f.task_count > chips.length ? h('span', { class: 'muted more', text: '+' + fmtN(f.task_count - chips.length) + ' more' }) : null,
            h('span', { class: 'spacer' }),
            h('a', { class: 'btn ghost small', href: '#', onclick: (e) => { e.preventDefault(); showFindingTasks(f.index); } }, 'List ' + plural(f.task_count, 'task')),
            h('a', { class: 'btn ghost small', href: '#', onclick: (e) => { e.preventDefault(); setTab('graph'); } }, 'Wait-for graph')))));
    }
    if (d.findings.length > shown.length || total > d.findings.length) {
      box.append(h('div', {},
        h('a', { href: '#', class: 'btn ghost small', onclick: (e) => { e.preventDefault(); st.allFindings = !st.allFindings; renderFindings(last); } },
          st.allFindings ? 'Show fewer' : 'Show all ' + fmtN(d.findings.length) + (total > d.findings.length ? ' of ' + fmtN(total) : '') + ' findings')));
    }
  }
  function showFindingTasks(index) {
    st.finding = index;
    st.stack = null;
    st.group = false;
    st.sort = '';
    setTab('tasks');
    changed(true);
    $('pane-tasks').scrollIntoView({ behavior: 'smooth' });
  }

  // ------------------------------------------------------------- table
  const TASK_COLS = [
    { label: 'ID', sort: 'id', cls: 'num' },
    { label: 'Name', sort: 'name' },
    { label: 'State', sort: 'state' },
    { label: 'Wait reason', sort: 'reason' },
    { label: 'Parked for', sort: 'parked', cls: 'num', desc: true },
    { label: 'Function' },
    { label: 'Location' },
  ];
  const GROUP_COLS = [
    { label: 'Tasks', sort: 'count', cls: 'num', desc: true },
    { label: 'State', sort: 'state' },
    { label: 'Wait reason', sort: 'reason' },
    { label: 'Oldest park', sort: 'parked', cls: 'num', desc: true },
    { label: 'Function' },
    { label: 'Location' },
    { label: 'Names', sort: 'name' },
  ];
  const severityOf = (row) => row.flag || null;
  function stateBadge(state, sev) {
    const cls = sev === 'deadlock' ? 'stuck' : sev === 'leak' ? 'leaky' : state;
    return h('span', { class: 'state ' + cls, text: state === 'external' ? 'external wait' : state });
  }
  function renderHead(cols, currentSort) {
    const tr = h('tr');
    const cur = currentSort.replace(/^-/, '');
    const desc = currentSort.startsWith('-');
    for (const c of cols) {
      const th = h('th', { class: (c.sort ? 'sortable ' : '') + (c.cls || ''), scope: 'col', title: c.sort ? 'Sort' : null }, c.label);
      if (c.sort && c.sort === cur) th.append(h('span', { class: 'arrow', text: desc ? '▼' : '▲' }));
      if (c.sort) {
        th.addEventListener('click', () => {
          if (c.sort === cur) st.sort = (desc ? '' : '-') + c.sort;
          else st.sort = (c.desc ? '-' : '') + c.sort;
          changed(true);
        });
      }
      tr.append(th);
    }
    return tr;
  }
  function renderTable(d) {
    const table = $('tasks');
    const head = clear(table.tHead);
    const body = clear(table.tBodies[0]);
    if (d.mode === 'groups') {
      head.append(renderHead(GROUP_COLS, d.sort));
      lastGroups = new Map();
      for (const g of d.groups) {
        lastGroups.set(g.stack_key, g);
        const sev = g.flag || null;
        const names = g.names.join(', ') + (g.more_names ? ', …' : '');
        body.append(h('tr', { class: st.groupSel === g.stack_key ? 'selected' : '', onclick: () => selectGroup(g.stack_key), 'data-key': g.stack_key },
          h('td', { class: 'num' }, sev ? h('span', { class: 'flag ' + sev, title: g.in_findings + ' in findings' }) : null, h('b', { text: fmtN(g.count) })),
          h('td', {}, stateBadge(g.state, sev)),
          h('td', { text: g.wait_reason || '' }),
          h('td', { class: 'num', text: fmtDur(g.oldest_parked_for) }),
          h('td', { class: 'fn', title: g.function || '', text: g.function || '?' }),
          h('td', { class: 'locc', text: g.location }),
          h('td', { class: 'name', text: names })));
      }
      $('empty').hidden = d.groups.length > 0;
    } else {
      head.append(renderHead(TASK_COLS, d.sort));
      for (const t of d.tasks) {
        const sev = severityOf(t);
        body.append(h('tr', { class: st.task === t.id ? 'selected' : '', onclick: () => selectTask(t.id), 'data-id': t.id },
          h('td', { class: 'num' }, sev ? h('span', { class: 'flag ' + sev, title: sev === 'leak' ? 'leak suspect' : 'deadlocked' }) : null, t.id),
          h('td', { class: 'name', text: t.name || '' }),
          h('td', {}, stateBadge(t.state, sev)),
          h('td', { text: t.wait_reason || '' }),
          h('td', { class: 'num', text: fmtDur(t.parked_for) }),
          h('td', { class: 'fn', title: t.function || '', text: t.function || '' }),
          h('td', { class: 'locc', text: t.location })));
      }
      $('empty').hidden = d.tasks.length > 0;
    }
    const n = d.mode === 'groups' ? d.groups.length : d.tasks.length;
    const what = d.mode === 'groups' ? 'stack groups' : 'tasks';
    $('range').textContent = d.total ? fmtN(d.offset + 1) + '–' + fmtN(d.offset + n) + ' of ' + fmtN(d.total) + ' ' + what : '0 ' + what;
    $('first').disabled = $('prev').disabled = d.offset === 0;
    $('next').disabled = $('last').disabled = d.offset + n >= d.total;
  }

  // ------------------------------------------------------------- controls
  function syncControls() {
    if (document.activeElement !== $('q')) $('q').value = st.q;
    $('state').value = st.state;
    $('reason').value = st.reason;
    $('infindings').checked = st.infindings;
    $('group').checked = st.group;
    $('limit').value = String(st.limit);
    const active = $('active-filter');
    if (st.finding !== null) {
      active.hidden = false;
      const f = last && last.findings[st.finding];
      active.textContent = 'Finding: ' + (f ? f.title + ' (' + plural(f.task_count, 'task') + ')' : '#' + st.finding);
    } else if (st.stack) {
      active.hidden = false;
      active.textContent = 'One stack group';
    } else {
      active.hidden = true;
    }
    for (const b of document.querySelectorAll('.tabs button')) b.setAttribute('aria-selected', String(b.dataset.tab === st.tab));
    $('pane-tasks').hidden = st.tab !== 'tasks';
    $('pane-graph').hidden = st.tab !== 'graph';
    $('pane-flame').hidden = st.tab !== 'flame';
  }
  function setTab(tab) {
    if (st.tab === tab) return;
    st.tab = tab;
    writeHash();
    syncControls();
    if (tab === 'graph') loadGraph(true);
    if (tab === 'flame') loadFlame();
  }

  let qTimer = null;
  function bindControls() {
    $('q').addEventListener('input', () => {
      // The filter takes the text at once (another control may refresh first);
      // the refresh for the text itself waits for a pause in typing.
      st.q = $('q').value.trim();
      clearTimeout(qTimer);
      qTimer = setTimeout(() => changed(true), 250);
    });
    $('filters').addEventListener('submit', (e) => { e.preventDefault(); st.q = $('q').value.trim(); changed(true); });
    $('state').addEventListener('change', () => { st.state = $('state').value; changed(true); });
    $('reason').addEventListener('change', () => { st.reason = $('reason').value; changed(true); });
    $('infindings').addEventListener('change', () => { st.infindings = $('infindings').checked; changed(true); });
    $('group').addEventListener('change', () => { st.group = $('group').checked; st.sort = ''; changed(true); });
    $('clear').addEventListener('click', () => {
      Object.assign(st, { q: '', state: '', reason: '', infindings: false, finding: null, stack: null, sort: '' });
      $('q').value = '';
      changed(true);
    });
    $('limit').addEventListener('change', () => { st.limit = Number($('limit').value); changed(true); });
    $('first').addEventListener('click', () => { st.offset = 0; changed(false); });
    $('prev').addEventListener('click', () => { st.offset = Math.max(0, st.offset - st.limit); changed(false); });
    $('next').addEventListener('click', () => { st.offset += st.limit; changed(false); });
    $('last').addEventListener('click', () => {
      if (last) st.offset = Math.max(0, Math.floor((last.total - 1) / st.limit) * st.limit);
      changed(false);
    });
    $('pause').addEventListener('click', () => setPaused(!st.paused));
    $('refresh').addEventListener('click', () => refresh());
    $('interval').addEventListener('change', () => { st.interval = Number($('interval').value); schedule(); });
    for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => setTab(b.dataset.tab));
    $('d-close').addEventListener('click', closeDrawer);
    $('gscope').addEventListener('change', () => { st.gscope = $('gscope').value; loadGraph(true); });
    $('gmax').addEventListener('change', () => { st.gmax = Number($('gmax').value); loadGraph(true); });
    $('gfit').addEventListener('click', () => fitGraph());
    $('fl-filter').addEventListener('change', () => { st.flFilter = $('fl-filter').checked; loadFlame(); });
    document.addEventListener('keydown', (e) => {
      const typing = ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement.tagName);
      if (e.key === '/' && !typing) { e.preventDefault(); $('q').focus(); }
      if (e.key === 'Escape') { if (typing) document.activeElement.blur(); else closeDrawer(); }
    });
    window.addEventListener('hashchange', () => { readHash(); syncControls(); refresh(); });
    document.addEventListener('visibilitychange', () => { if (!document.hidden && !st.paused) refresh(); });
  }

  // ------------------------------------------------------------- drawer
  function openDrawer() {
    $('drawer').hidden = false;
    document.body.classList.add('drawer-open');
  }
  function closeDrawer() {
    $('drawer').hidden = true;
    document.body.classList.remove('drawer-open');
    st.task = null;
    st.groupSel = null;
    writeHash();
    for (const tr of document.querySelectorAll('#tasks tr.selected')) tr.classList.remove('selected');
    markGraphSelection();
  }
  function selectTask(id) {
    st.task = id;
    st.groupSel = null;
    writeHash();
    for (const tr of document.querySelectorAll('#tasks tbody tr')) tr.classList.toggle('selected', Number(tr.dataset.id) === id);
    markGraphSelection();
    openDrawer();
    clear($('d-title')).append(taskLabel(id));
    clear($('d-body')).append(h('div', { class: 'muted', text: 'Loading…' }));
    loadDetail(id, false);
  }
  let detailSeq = 0;
  async function loadDetail(id, keepScroll) {
    const my = ++detailSeq;
    const body = $('d-body');
    const scroll = body.scrollTop;
    let d;
    try {
      d = await getJSON('tasks.json?id=' + encodeURIComponent(id));
    } catch (e) {
      if (my !== detailSeq || st.task !== id) return;
      clear($('d-title')).append(taskLabel(id));
      clear(body).append(h('div', { class: 'empty', text: e.status === 404 ? 'Task ' + id + ' is not alive any more.' : e.message }));
      return;
    }
    if (my !== detailSeq || st.task !== id) return;
    renderDetail(d.task);
    if (keepScroll) body.scrollTop = scroll;
  }
  function kv(pairs) {
    const dl = h('dl', { class: 'kv' });
    for (const [k, v] of pairs) {
      if (v === null || v === undefined || v === '') continue;
      dl.append(h('dt', { text: k }), h('dd', {}, v));
    }
    return dl;
  }
  function taskLink(t) {
    if (!t) return null;
    const title = t.state_word ? 'parked in ' + t.state_word : 'exited';
    return h('a', { class: 'tasklink', href: '#', title, onclick: (e) => { e.preventDefault(); selectTask(t.id); } }, taskLabel(t.id, t.name));
  }
  function frameList(frames) {
    return h('ol', { class: 'frames' }, frames.map((f) => h('li', {},
      h('div', { class: 'fn', text: f.function }),
      f.file ? h('div', { class: 'at', text: f.file + (f.line ? ':' + f.line : '') }) : null,
      f.source ? h('pre', { class: 'src' }, f.source.lines.map((line, i) => {
        const n = f.source.first_line + i;
        return h('span', { class: n === f.line ? 'hl' : '' }, h('i', { text: n }), line);
      })) : null)));
  }
  function renderDetail(t) {
    const sev = severityOf(t);
    clear($('d-title')).append(
      h('span', { text: t.name || 'task ' + t.id }),
      t.name ? h('span', { class: 'id', text: '#' + t.id }) : null,
      stateBadge(t.state, sev));
    const body = clear($('d-body'));
    for (const f of t.finding_details) {
      body.append(h('div', { class: 'alert' + (f.severity === 'leak' ? ' leak' : '') },
        h('div', { class: 't' }, f.title + ' · ' + f.certainty),
        explain(f.explanation)));
    }
    let wake = null;
    if (t.state === 'parked') {
      wake = t.timer_wakeable ? 'a timer will wake it' : t.blocked ? 'only another task can wake it' : 'may wake on its own';
    }
    body.append(kv([
      ['State', t.state_word + (t.state === 'parked' ? ' (parked)' : '')],
      ['Parked for', t.parked_for !== null ? fmtDur(t.parked_for) : null],
      ['Parked at', t.parked_at ? h('code', { class: 'loc', text: t.parked_at }) : null],
      ['Woken by', wake],
      ['Activity', t.state === 'parked' ? (t.activity_since_park ? fmtN(t.activity_since_park) + ' operations on what it waits for since it parked' : 'nothing happened on what it waits for since it parked') : null],
      ['Spawned at', h('code', { class: 'loc', text: t.spawned_at })],
      ['Created by', t.created_by || t.parent_task ? [t.created_by ? h('code', { class: 'mono', text: t.created_by }) : null, t.parent_task ? [' in ', taskLink(t.parent_task)] : null] : 'the runtime (main task)'],
      ['Spawned tasks', t.children ? fmtN(t.children) : null],
      ['Kind', t.kind === 'thread' ? 'OS thread' : 'async task'],
      ['Runtime', String(t.runtime)],
    ]));
    if (t.waits_on.length) {
      body.append(h('h3', { text: 'Waits on' }));
      for (const w of t.waits_on) {
        body.append(h('div', { class: 'wait' },
          h('div', {}, h('span', { class: 'l', text: w.label }), ' · ', w.op),
          h('div', { class: 'muted', text: w.describe + (w.created_at ? ' · made at ' + w.created_at : '') }),
          w.holders.length ? h('div', {}, 'held by ', w.holders.map((x) => [taskLink(x.task), x.write ? '' : ' (read)', ' since ', h('code', { class: 'loc', text: x.at }), ' ']))
            : null,
          w.queue.length ? h('div', {}, 'queued: ', w.queue.map((x) => [taskLink(x), ' '])) : null,
          w.could_wake.length ? h('div', {}, 'could be woken by ', w.could_wake.map((x) => [taskLink(x), ' '])) : null));
      }
    }
    if (t.holds.length) {
      body.append(h('h3', { text: 'Holds' }));
      for (const x of t.holds) {
        body.append(h('div', { class: 'wait' }, h('span', { class: 'l', text: x.label }), x.write ? '' : ' (read)', ' locked at ', h('code', { class: 'loc', text: x.at })));
      }
    }
    body.append(h('h3', {}, 'Stack', t.stack_sampled ? h('span', { class: 'muted', text: ' · sampled (shared with earlier parks at this line)' }) : null));
    body.append(frameList(t.stack));
  }
  function selectGroup(key) {
    st.groupSel = key;
    st.task = null;
    writeHash();
    for (const tr of document.querySelectorAll('#tasks tbody tr')) tr.classList.toggle('selected', tr.dataset.key === key);
    openDrawer();
    refreshGroupDrawer();
  }
  function refreshGroupDrawer() {
    const g = lastGroups.get(st.groupSel);
    if (!g) return;
    clear($('d-title')).append(h('span', { text: plural(g.count, 'task') + ' with this stack' }), stateBadge(g.state, null));
    const body = clear($('d-body'));
    body.append(kv([
      ['State', g.state_word],
      ['Oldest park', g.oldest_parked_for !== null ? fmtDur(g.oldest_parked_for) : null],
      ['Location', h('code', { class: 'loc', text: g.location })],
      ['Names', g.names.length ? g.names.join(', ') + (g.more_names ? ', …' : '') : null],
      ['In findings', g.in_findings ? fmtN(g.in_findings) : null],
    ]));
    body.append(h('div', { class: 'toolbar' }, h('button', {
      class: 'btn small', type: 'button',
      onclick: () => { st.stack = g.stack_key; st.group = false; st.sort = ''; changed(true); },
    }, 'List these ' + plural(g.count, 'task'))));
    body.append(h('h3', { text: 'Tasks' }), h('div', { class: 'idlist' },
      g.task_ids.map((id) => taskLink({ id, name: null, state_word: g.state_word })),
      g.count > g.task_ids.length ? h('span', { class: 'muted', text: '+' + fmtN(g.count - g.task_ids.length) + ' more' }) : null));
    body.append(h('h3', { text: 'Stack' }), frameList(g.frames));
  }

  // ------------------------------------------------------------- wait-for graph
  const view = { x: 0, y: 0, k: 1, fitted: false, bbox: null };
  let graphSeq = 0;

  async function loadGraph(fit) {
    const my = ++graphSeq;
    let g;
    try {
      g = await getJSON('tasks/graph?format=json&max_nodes=' + st.gmax + '&scope=' + st.gscope);
    } catch (e) {
      if (my === graphSeq) $('ginfo').textContent = e.message;
      return;
    }
    if (my !== graphSeq) return;
    const cycles = g.cycles ? ' · ' + plural(g.cycles, 'cycle') : '';
    const drawn = drawGraph(g, fit || !view.fitted);
    $('ginfo').textContent = fmtN(g.nodes.length) + ' of ' + fmtN(g.total_nodes) + ' nodes' + cycles +
      (g.truncated ? ' (cut: cycles and findings first)' : '') + (drawn < g.nodes.length ? ' · ' + fmtN(drawn) + ' drawn, alike pieces counted' : '');
  }

  /** Width and height of a node's shape. */
  function nodeSize(n) {
    if (n.type === 'task') {
      const sub = n.wait_reason || n.state;
      const w = Math.max(n.label.length * 7 + 22, sub.length * 6.8 + 22, 100);
      return { w: Math.min(w, 280), h: 40 };
    }
    return { w: Math.max(n.label.length * 7 + 34, 90), h: 34 };
  }

  /** Lays out one connected component: layers by longest path (back edges ignored), barycentre ordering. */
  function layoutComponent(ids, nodes, out, inn) {
    const inComp = new Set(ids);
    // Depth-first from sources to find back edges (they close the cycles).
    const color = new Map();
    const back = new Set();
    const roots = ids.filter((i) => !(inn[i] || []).some((e) => inComp.has(e.from)));
    const order = [...roots, ...ids];
    for (const r of order) {
      if (color.has(r)) continue;
      const stack = [[r, 0]];
      color.set(r, 1);
      while (stack.length) {
        const top = stack[stack.length - 1];
        const edges = out[top[0]] || [];
        if (top[1] < edges.length) {
          const e = edges[top[1]++];
          const c = color.get(e.to);
          if (c === 1) back.add(e);
          else if (!c) { color.set(e.to, 1); stack.push([e.to, 0]); }
        } else {
          color.set(top[0], 2);
          stack.pop();
        }
      }
    }
    // Longest-path layers over the forward edges (Kahn's order).
    const layer = new Map(ids.map((i) => [i, 0]));
    const indeg = new Map(ids.map((i) => [i, 0]));
    for (const i of ids) for (const e of out[i] || []) if (!back.has(e)) indeg.set(e.to, indeg.get(e.to) + 1);
    const queue = ids.filter((i) => indeg.get(i) === 0);
    while (queue.length) {
      const i = queue.shift();
      for (const e of out[i] || []) {
        if (back.has(e)) continue;
        layer.set(e.to, Math.max(layer.get(e.to), layer.get(i) + 1));
        indeg.set(e.to, indeg.get(e.to) - 1);
        if (indeg.get(e.to) === 0) queue.push(e.to);
      }
    }
    const layers = [];
    for (const i of ids) (layers[layer.get(i)] = layers[layer.get(i)] || []).push(i);
    for (let l = 0; l < layers.length; l++) if (!layers[l]) layers[l] = [];
    // Barycentre sweeps.
    const pos = new Map();
    const setPos = () => layers.forEach((L) => L.forEach((i, k) => pos.set(i, k)));
    setPos();
    const nbrs = (i) => [...(out[i] || []).map((e) => e.to), ...(inn[i] || []).map((e) => e.from)].filter((j) => inComp.has(j));
    for (let sweep = 0; sweep < 4; sweep++) {
      for (const L of layers) {
        const bc = new Map(L.map((i) => {
          const ns = nbrs(i).filter((j) => layer.get(j) !== layer.get(i));
          return [i, ns.length ? ns.reduce((a, j) => a + pos.get(j), 0) / ns.length : pos.get(i)];
        }));
        L.sort((a, b) => bc.get(a) - bc.get(b));
      }
      setPos();
    }
    // Coordinates: layers left to right, nodes top to bottom, each column centred.
    const GAPX = 70;
    const GAPY = 16;
    const colW = layers.map((L) => Math.max(0, ...L.map((i) => nodeSize(nodes[i]).w)));
    const colH = layers.map((L) => L.reduce((a, i) => a + nodeSize(nodes[i]).h, 0) + GAPY * Math.max(0, L.length - 1));
    const H = Math.max(...colH);
    const place = new Map();
    let x = 0;
    layers.forEach((L, l) => {
      let y = (H - colH[l]) / 2;
      for (const i of L) {
        const sz = nodeSize(nodes[i]);
        place.set(i, { x: x + colW[l] / 2, y: y + sz.h / 2, w: sz.w, h: sz.h, layer: l });
        y += sz.h + GAPY;
      }
      x += colW[l] + GAPX;
    });
    return { place, back, w: Math.max(0, x - GAPX), h: H };
  }

  /** A node, described without its identity. */
  const describe = (n) => n.type + ':' + (n.wait_reason || n.state || (n.kind && Object.keys(n.kind)[0]) || n.kind || '') + ':' + (n.flag || '');

  /**
   * Finds, around each hub (a node with many edges), the small pieces of the
   * graph attached only through it; of the pieces that look the same, keeps
   * one and counts the others. Returns the hidden nodes and, per kept piece's
   * attachment node, how many pieces it stands for.
   */
  function compress(g, out, inn) {
    const hidden = new Set();
    const badges = new Map();
    const nbrs = (i) => [...(out[i] || []).map((e) => e.to), ...(inn[i] || []).map((e) => e.from)];
    const hubs = g.nodes.map((_, i) => i).filter((i) => nbrs(i).length >= 6).sort((a, b) => nbrs(b).length - nbrs(a).length);
    for (const hub of hubs) {
      if (hidden.has(hub)) continue;
      const seen = new Set([hub]);
      const groups = new Map();
      for (const start of nbrs(hub)) {
        if (seen.has(start) || hidden.has(start)) continue;
        const piece = [start];
        seen.add(start);
        let big = false;
        for (let k = 0; k < piece.length; k++) {
          for (const m of nbrs(piece[k])) {
            if (m === hub || seen.has(m) || hidden.has(m)) continue;
            seen.add(m);
            piece.push(m);
            if (piece.length > 40) big = true;
          }
        }
        if (big || !piece.some((i) => g.nodes[i].type === 'task') || piece.some((i) => (out[i] || []).some((e) => e.cycle))) continue;
        const inPiece = new Set(piece);
        const sig = piece.map((i) => {
          const ends = [
            ...(out[i] || []).map((e) => '>' + e.kind + (e.to === hub ? '@hub' : inPiece.has(e.to) ? describe(g.nodes[e.to]) : '?')),
            ...(inn[i] || []).map((e) => '<' + e.kind + (e.from === hub ? '@hub' : inPiece.has(e.from) ? describe(g.nodes[e.from]) : '?')),
          ].sort();
          return describe(g.nodes[i]) + '[' + ends.join(',') + ']';
        }).sort().join('|');
        if (!groups.has(sig)) groups.set(sig, []);
        groups.get(sig).push({ piece, start });
      }
      for (const list of groups.values()) {
        if (list.length < 2) continue;
        badges.set(list[0].start, list.length);
        for (const p of list.slice(1)) for (const i of p.piece) hidden.add(i);
      }
    }
    return { hidden, badges };
  }

  function componentsOf(g, out, inn, hidden) {
    const parent = g.nodes.map((_, i) => i);
    const find = (i) => { while (parent[i] !== i) { parent[i] = parent[parent[i]]; i = parent[i]; } return i; };
    for (const e of g.edges) if (!e.self_wake && !hidden.has(e.from) && !hidden.has(e.to)) parent[find(e.from)] = find(e.to);
    const comps = new Map();
    g.nodes.forEach((_, i) => {
      if (hidden.has(i)) return;
      const r = find(i);
      if (!comps.has(r)) comps.set(r, []);
      comps.get(r).push(i);
    });
    return Array.from(comps.values()).map((ids) => {
      const cyc = ids.some((i) => (out[i] || []).some((e) => e.cycle));
      const flags = ids.map((i) => g.nodes[i].flag).filter(Boolean);
      const sig = ids.map((i) => {
        const n = g.nodes[i];
        return n.type + ':' + (n.wait_reason || n.state || '') + ':' + (n.flag || '') + ':' + (out[i] || []).map((e) => e.kind).sort().join(',');
      }).sort().join('|');
      return { ids, cyc, deadlock: flags.includes('deadlock'), leak: flags.includes('leak'), sig };
    });
  }

  function drawGraph(g, fit) {
    const svg = $('graph');
    clear(svg);
    $('gempty').hidden = g.nodes.length > 0;
    if (!g.nodes.length) return 0;
    const out = [];
    const inn = [];
    for (const e of g.edges) {
      if (e.self_wake) continue; // a task cannot wake itself: not drawn
      (out[e.from] = out[e.from] || []).push(e);
      (inn[e.to] = inn[e.to] || []).push(e);
    }
    // Identical pieces hanging off one hub (a task many channels could wake,
    // a channel many tasks wait on) are drawn once, with a count.
    const { hidden, badges } = compress(g, out, inn);
    if (hidden.size) {
      for (let i = 0; i < g.nodes.length; i++) {
        if (out[i]) out[i] = out[i].filter((e) => !hidden.has(e.to));
        if (inn[i]) inn[i] = inn[i].filter((e) => !hidden.has(e.from));
      }
    }
    // Components, most important first; identical ones drawn once with a count.
    const comps = componentsOf(g, out, inn, hidden);
    const rank = (c) => (c.cyc ? 0 : c.deadlock ? 1 : c.leak ? 2 : 3);
    const bySig = new Map();
    for (const c of comps) {
      const seen = bySig.get(c.sig);
      if (seen && c.ids.length <= 12) seen.same += 1;
      else if (!seen) { c.same = 1; bySig.set(c.sig, c); }
      else { c.same = 1; bySig.set(c.sig + '#' + c.ids[0], c); }
    }
    const shown = Array.from(bySig.values()).sort((a, b) => rank(a) - rank(b) || b.ids.length - a.ids.length || a.ids[0] - b.ids[0]);

    const defs = s('defs', {},
      s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
        s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#98a2b3' })),
      s('marker', { id: 'arrow-red', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
        s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#d92d20' })));
    const root = s('g', { id: 'groot' });
    svg.append(defs, root);

    const boxW = Math.max(900, $('graphbox').clientWidth - 40);
    let cx = 0;
    let cy = 0;
    let rowH = 0;
    const GAP = 46;
    for (const c of shown) {
      const lay = layoutComponent(c.ids, g.nodes, out, inn);
      if (cx > 0 && cx + lay.w > boxW) { cx = 0; cy += rowH + GAP; rowH = 0; }
      const ox = cx;
      const oy = cy + 18;
      const title = c.cyc ? 'cycle' : c.deadlock ? 'deadlocked' : c.leak ? 'leak suspects' : '';
      const same = c.same > 1 ? '×' + fmtN(c.same) + ' alike' : '';
      if (title || same) root.append(s('text', { class: 'comp-title', x: ox, y: cy + 10, text: [title, same].filter(Boolean).join(' · ') }));
      const P = (i) => { const p = lay.place.get(i); return { x: p.x + ox, y: p.y + oy, w: p.w, h: p.h, layer: p.layer }; };
      for (const i of c.ids) {
        for (const e of out[i] || []) {
          const a = P(e.from);
          const b = P(e.to);
          let d;
          if (!lay.back.has(e) && b.layer > a.layer) {
            const x1 = a.x + a.w / 2;
            const x2 = b.x - b.w / 2 - 2;
            const mx = (x1 + x2) / 2;
            d = `M${x1},${a.y} C${mx},${a.y} ${mx},${b.y} ${x2},${b.y}`;
          } else {
            // Back (or same-layer) edge: a loop below the nodes.
            const y1 = a.y + a.h / 2;
            const y2 = b.y + b.h / 2 + 2;
            const low = Math.max(y1, y2) + 34;
            d = `M${a.x},${y1} C${a.x},${low} ${b.x},${low} ${b.x},${y2}`;
          }
          const cls = 'edge ' + e.kind + (e.cycle ? ' cycle' : '');
          root.append(s('path', { class: cls, d, 'marker-end': e.cycle ? 'url(#arrow-red)' : 'url(#arrow)' }, s('title', { text: e.evidence })));
        }
      }
      for (const i of c.ids) {
        const n = g.nodes[i];
        const p = P(i);
        const inCycle = (out[i] || []).some((e) => e.cycle);
        if (n.type === 'task') {
          const cls = 'node task ' + (n.flag || n.state);
          const at = n.at ? n.at.file + ':' + n.at.line : '';
          root.append(s('g', { class: cls, 'data-task': n.id, transform: `translate(${p.x - p.w / 2},${p.y - p.h / 2})`, onclick: () => selectTask(n.id) },
            s('title', { text: n.label + (n.wait_reason ? ' [' + n.wait_reason + ']' : '') + (at ? ' at ' + at : '') }),
            s('rect', { width: p.w, height: p.h, rx: 6 }),
            s('text', { x: 10, y: 16, text: n.label }),
            s('text', { class: 'sub', x: 10, y: 31, text: n.wait_reason || n.state })));
        } else {
          const closed = n.kind && n.kind.Chan && n.kind.Chan.closed ? ' (closed)' : '';
          root.append(s('g', { class: 'node resource' + (inCycle ? ' incycle' : ''), transform: `translate(${p.x},${p.y})` },
            s('title', { text: n.label + closed }),
            s('ellipse', { rx: p.w / 2, ry: p.h / 2 }),
            s('text', { x: 0, y: 4, 'text-anchor': 'middle', text: n.label + closed })));
        }
      }
      for (const i of c.ids) {
        const n = badges.get(i);
        if (!n) continue;
        const p = P(i);
        const label = '×' + fmtN(n);
        const w = label.length * 7 + 12;
        root.append(s('g', { class: 'badge-n', transform: `translate(${p.x + p.w / 2 - w + 6},${p.y - p.h / 2 - 10})` },
          s('title', { text: fmtN(n) + ' alike pieces of the graph, one drawn' }),
          s('rect', { width: w, height: 17, rx: 8.5 }),
          s('text', { x: w / 2, y: 12.5, 'text-anchor': 'middle', text: label })));
      }
      cx += lay.w + GAP;
      rowH = Math.max(rowH, lay.h + 18 + 40);
    }
    view.bbox = { w: Math.max(cx, boxW), h: cy + rowH };
    markGraphSelection();
    if (fit) fitGraph();
    else applyView();
    return g.nodes.length - hidden.size;
  }
  function markGraphSelection() {
    for (const n of document.querySelectorAll('#graph .node.task')) n.classList.toggle('selected', Number(n.dataset.task) === st.task);
  }
  function applyView() {
    const r = $('groot');
    if (r) r.setAttribute('transform', `translate(${view.x},${view.y}) scale(${view.k})`);
  }
  function fitGraph() {
    const r = $('groot');
    if (!r) return;
    const b = r.getBBox();
    const W = $('graphbox').clientWidth;
    const H = $('graphbox').clientHeight;
    if (!b.width || !W) return;
    view.k = Math.min(1.25, (W - 40) / b.width, (H - 40) / b.height);
    view.x = (W - b.width * view.k) / 2 - b.x * view.k;
    view.y = Math.max(20, (H - b.height * view.k) / 2) - b.y * view.k;
    view.fitted = true;
    applyView();
  }
  function bindGraph() {
    const svg = $('graph');
    let drag = null;
    svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const rect = svg.getBoundingClientRect();
      const mx = e.clientX - rect.left;
      const my = e.clientY - rect.top;
      const k = Math.min(4, Math.max(0.1, view.k * Math.exp(-e.deltaY * 0.0015)));
      view.x = mx - ((mx - view.x) * k) / view.k;
      view.y = my - ((my - view.y) * k) / view.k;
      view.k = k;
      applyView();
    }, { passive: false });
    svg.addEventListener('pointerdown', (e) => {
      if (e.target.closest('.node')) return;
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
      svg.classList.add('dragging');
      svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener('pointermove', (e) => {
      if (!drag) return;
      view.x = drag.vx + e.clientX - drag.x;
      view.y = drag.vy + e.clientY - drag.y;
      applyView();
    });
    const end = () => { drag = null; svg.classList.remove('dragging'); };
    svg.addEventListener('pointerup', end);
    svg.addEventListener('pointercancel', end);
  }

  // ------------------------------------------------------------- flame graph
  function flameURL() {
    const p = st.flFilter ? filterParams(new URLSearchParams()) : new URLSearchParams();
    const q = p.toString();
    return 'tasks/flamegraph.svg' + (q ? '?' + q : '');
  }
  function loadFlame() {
    const url = flameURL();
    $('fl-open').href = url;
    const old = $('flame');
    const obj = h('object', { id: 'flame', type: 'image/svg+xml', 'aria-label': 'Flame graph', data: url + (url.includes('?') ? '&' : '?') + '_=' + Date.now() });
    obj.style.height = old.style.height;
    obj.addEventListener('load', () => {
      try {
        const root = obj.contentDocument && obj.contentDocument.documentElement;
        const vb = root && root.viewBox && root.viewBox.baseVal;
        if (vb && vb.width) obj.style.height = Math.ceil((obj.clientWidth * vb.height) / vb.width) + 'px';
      } catch (e) {
        /* not same-origin: keep the height */
      }
    });
    old.replaceWith(obj);
  }

  // ------------------------------------------------------------- start
  function start() {
    readHash();
    bindControls();
    bindGraph();
    syncControls();
    $('pause').textContent = st.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(st.paused));
    if (st.task !== null) selectTask(st.task);
    refresh();
    schedule();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
