// The orderq console: a page over the admin API of the node that served it. No framework and no
// build step: the DOM is built with `el` (never from HTML strings, so payloads cannot inject
// markup), each view has a `load` that fetches and redraws it, and the shown view reloads every
// POLL_MS. Rates are differences between two polls of a counter, charted as sparklines.
'use strict';

// Errors reach the page's own list as well as the console, so a browser test can read them.
window.__consoleErrors = window.__consoleErrors || [];
(function recordErrors() {
  const original = console.error.bind(console);
  console.error = (...args) => {
    window.__consoleErrors.push(args.map(String).join(' '));
    original(...args);
  };
  window.addEventListener('error', (e) => window.__consoleErrors.push(String(e.message)));
  window.addEventListener('unhandledrejection', (e) =>
    window.__consoleErrors.push('unhandled rejection: ' + String(e.reason)));
})();

const POLL_MS = 2000;
const SERIES_POINTS = 60;
const TOKEN_KEY = 'orderq.adminToken';

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  view: null,
  timer: null,
  generation: 0,
  series: new Map(), // name -> [{t, v}] of rates
  counters: new Map(), // name -> {t, v} last reading of a counter
  order: { id: null, user: null },
  stock: { after: null, pages: [], q: '' },
  dead: { group: null, q: '', selected: new Set() },
};

// ---- DOM helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

function dash(value) {
  return value === null || value === undefined || value === '' ? '—' : value;
}

function when(text) {
  if (!text) return '—';
  const d = new Date(text);
  return isNaN(d) ? text : d.toLocaleString();
}

function age(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return ms + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  if (ms < 3600000) return (ms / 60000).toFixed(1) + ' min';
  return (ms / 3600000).toFixed(1) + ' h';
}

function short(value, max) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

function badge(text, kind) {
  return el('span', { class: 'badge ' + (kind || '') }, text);
}

// A table: columns are [title, render(row) -> cell content, class?].
function table(node, columns, rows, options) {
  const opts = options || {};
  const head = el('tr', {}, columns.map(([title, , cls]) => el('th', { class: cls }, title)));
  const body = rows.length === 0
    ? [el('tr', {}, el('td', { class: 'empty', colspan: columns.length }, opts.empty || 'None'))]
    : rows.map((row) => el('tr', {
      class: opts.onclick ? 'clickable' : null,
      onclick: opts.onclick ? () => opts.onclick(row) : null,
      dataset: opts.key ? { key: opts.key(row) } : null,
    }, columns.map(([, render, cls]) => el('td', { class: cls }, render(row)))));
  show(node, el('thead', {}, head), el('tbody', {}, body));
}

function figure(label, value, chartName) {
  return el('div', { class: 'figure' },
    el('div', { class: 'label' }, label),
    el('div', { class: 'value' + (String(value).length > 14 ? ' small' : '') }, dash(value)),
    chartName ? sparkline(chartName) : null);
}

// ---- rates and sparklines

// Records a counter's reading; returns its rate per second since the last reading (or null).
function rate(name, value) {
  const now = Date.now();
  const last = state.counters.get(name);
  state.counters.set(name, { t: now, v: value });
  if (!last || typeof value !== 'number' || now <= last.t) return null;
  const perSec = Math.max(0, (value - last.v) * 1000 / (now - last.t));
  const points = state.series.get(name) || [];
  points.push(perSec);
  if (points.length > SERIES_POINTS) points.shift();
  state.series.set(name, points);
  return perSec;
}

function lastRate(name) {
  const points = state.series.get(name);
  return points && points.length ? points[points.length - 1] : null;
}

function perSec(value) {
  return value === null || value === undefined ? '—' : value.toFixed(value < 10 ? 1 : 0) + '/s';
}

const SVG = 'http://www.w3.org/2000/svg';

// The recent rates of `name` as a small area chart, as wide as its box; `small` for a table cell.
function sparkline(name, small) {
  const width = small ? 90 : 150;
  const height = small ? 18 : 34;
  const points = state.series.get(name) || [];
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', small ? 'spark-box small' : 'spark-box');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', name + ' per second');
  if (points.length < 2) return svg;
  const max = Math.max(1, ...points);
  const step = width / (points.length - 1);
  const xy = points.map((v, i) => [i * step, height - 1 - (v / max) * (height - 3)]);
  const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
  const area = document.createElementNS(SVG, 'polygon');
  area.setAttribute('class', 'spark-area');
  area.setAttribute('points', `0,${height} ${line} ${width},${height}`);
  const path = document.createElementNS(SVG, 'polyline');
  path.setAttribute('class', 'spark');
  path.setAttribute('points', line);
  svg.append(area, path);
  return svg;
}

// ---- the API

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiFailure(0, 'unreachable', 'the node did not answer');
  }
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiFailure(response.status, error.code || 'error', error.message || response.statusText);
  }
  return data;
}

const enc = encodeURIComponent;

// ---- status line

function setStatus(text, isError) {
  const node = $('status');
  node.textContent = text;
  node.classList.toggle('error', Boolean(isError));
}

// ---- login

function showLogin(message) {
  stopPolling();
  $('login').hidden = false;
  $('top').hidden = true;
  document.querySelectorAll('.view').forEach((v) => { v.hidden = true; });
  $('login-error').textContent = message || '';
  $('token').focus();
}

async function signIn(event) {
  event.preventDefault();
  state.token = $('token').value.trim() || null;
  try {
    await api('GET', '/admin/cluster');
  } catch (e) {
    state.token = null;
    $('login-error').textContent = e.status === 401 || e.status === 403
      ? 'That token was refused.'
      : 'Could not sign in: ' + e.message;
    return;
  }
  if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
  $('token').value = '';
  $('login').hidden = true;
  $('top').hidden = false;
  route();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin('Signed out.');
}

// ---- views

const views = {
  cluster: loadCluster,
  order: loadOrder,
  stock: loadStock,
  queues: loadQueues,
  dead: loadDead,
  timers: loadTimers,
};

function route() {
  const [name, ...rest] = location.hash.replace(/^#/, '').split('/');
  const view = views[name] ? name : 'cluster';
  if (view === 'order' && rest.length) {
    const arg = decodeURIComponent(rest.join('/'));
    state.order = name === 'order' && rest[0] === 'user'
      ? { id: null, user: decodeURIComponent(rest.slice(1).join('/')) }
      : { id: arg, user: null };
    $('order-query').value = state.order.id || state.order.user || '';
  }
  state.view = view;
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== 'view-' + view; });
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.view === view));
  refresh();
}

// Loads the shown view now, then again every POLL_MS; a newer refresh supersedes this one.
async function refresh() {
  stopPolling();
  const generation = ++state.generation;
  try {
    await views[state.view]();
    if (generation === state.generation) setStatus('updated ' + new Date().toLocaleTimeString());
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) {
      showLogin('The token was refused; sign in again.');
      return;
    }
    if (generation === state.generation) setStatus(e.message, true);
  }
  if (generation === state.generation && $('login').hidden) {
    state.timer = setTimeout(refresh, POLL_MS);
  }
}

function stopPolling() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

// ---- Cluster

async function loadCluster() {
  const [status, ready] = await Promise.all([
    api('GET', '/admin/cluster'),
    fetch('/readyz', { cache: 'no-store' }).then((r) => r.ok, () => false),
  ]);
  const applied = rate('applied', status.last_applied);
  show($('cluster-figures'),
    figure('Answering node', status.node_id),
    figure('Leader', status.leader_id === null ? 'none' : 'node ' + status.leader_id),
    figure('Term', status.term),
    figure('Last log index', status.last_log_index),
    figure('Applied', status.last_applied),
    figure('Applied per second', perSec(applied === null ? lastRate('applied') : applied), 'applied'),
    figure('Snapshot index', status.snapshot_index),
    figure('This node', ready ? 'ready' : 'not ready'));
  const warnings = [];
  if (status.quorum_lost) warnings.push('This leader has not heard from a quorum within an election timeout.');
  if (status.clock_skewed) warnings.push("This node's clock is off from the other voters'; it does not lead.");
  if (status.leader_id === null) warnings.push('No leader is known: writes wait until one is elected.');
  show($('cluster-warnings'), warnings.map((w) => el('div', { class: 'warning' }, w)));
  const learners = new Set(status.learners || []);
  const leaderView = status.node_id === status.leader_id;
  const role = (n) => (n.id === status.leader_id ? badge('leader', 'info')
    : learners.has(n.id) ? badge('learner') : badge('follower'));
  const lag = (n) => (n.matched_index === null || status.last_log_index === null
    ? null : Math.max(0, status.last_log_index - n.matched_index));
  const health = (n) => {
    if (!leaderView) return n.id === status.node_id ? badge(ready ? 'ready' : 'not ready', ready ? 'ok' : 'bad') : '—';
    const behind = lag(n);
    if (behind === null) return badge('no contact', 'bad');
    return behind <= 100 ? badge('in sync', 'ok') : badge(behind + ' behind', 'warn');
  };
  // Replication progress is the leader's knowledge: a follower's answer has none to show.
  const progress = leaderView ? [
    ['Matched index', (n) => dash(n.matched_index), 'num'],
    ['Replication lag', (n) => dash(lag(n)), 'num'],
  ] : [];
  table($('cluster-members'), [
    ['Node', (n) => n.id, 'num'],
    ['Role', role],
    ['API', (n) => el('span', { class: 'mono' }, n.api_addr)],
    ['Raft', (n) => el('span', { class: 'mono' }, n.raft_addr)],
    ...progress,
    ['Clock offset', (n) => (n.clock_offset_ms === null ? '—' : n.clock_offset_ms + ' ms'), 'num'],
    ['Health', health],
  ], status.nodes || [], { key: (n) => n.id });
  $('cluster-note').textContent = leaderView
    ? 'Replication progress as the leader sees it.'
    : `Node ${status.node_id} is a follower: replication progress and lag are known to the leader (node ${dash(status.leader_id)}); open the console on the leader to see them.`;
}

// ---- Order story

async function loadOrder() {
  if (state.order.user) await loadUserOrders(state.order.user);
  else show($('order-user-list'));
  if (state.order.id) await loadStory(state.order.id);
  else show($('order-story'), el('p', { class: 'muted' }, 'Open an order by id, or list a user\'s orders.'));
}

async function loadUserOrders(user) {
  const page = await api('GET', `/admin/orders?user_id=${enc(user)}&limit=50`);
  const list = el('table', { id: 'user-orders' });
  table(list, [
    ['Order', (o) => el('span', { class: 'mono' }, o.id)],
    ['State', (o) => stateBadge(o.state)],
    ['Amount', (o) => money(o.amount_cents), 'num'],
    ['Items', (o) => o.items.map((i) => `${i.qty}× ${i.sku}`).join(', ')],
    ['Created', (o) => when(o.created_at)],
  ], page.orders, {
    empty: `No orders of user ${user}.`,
    key: (o) => o.id,
    onclick: (o) => { location.hash = '#order/' + enc(o.id); },
  });
  show($('order-user-list'), el('h3', {}, `Orders of ${user}`), list,
    page.next ? el('p', { class: 'muted' }, 'More orders follow; the first 50 are shown.') : null);
}

function money(cents) {
  return typeof cents === 'number' ? (cents / 100).toFixed(2) : '—';
}

function stateBadge(s) {
  const kind = { paid: 'ok', refunded: 'info', pending_payment: 'warn', refund_requested: 'warn', refund_failed: 'bad', closed: '' }[s];
  return badge(s || '—', kind);
}

function deliveryBadge(d) {
  if (d.status === 'settled') return badge('delivered', 'ok');
  if (d.status === 'dead') return badge('dead letter', 'bad');
  return badge(d.attempts && d.attempts.length ? 'retrying' : 'pending', 'warn');
}

// The fields that differ between a change's before and after images.
function diff(before, after) {
  const keys = new Set([...Object.keys(before || {}), ...Object.keys(after || {})]);
  const rows = [];
  for (const key of keys) {
    const b = before ? before[key] : undefined;
    const a = after ? after[key] : undefined;
    if (JSON.stringify(b) !== JSON.stringify(a)) rows.push([key, b, a]);
  }
  return rows;
}

async function loadStory(id) {
  const trace = await api('GET', `/admin/orders/${enc(id)}/trace`);
  const o = trace.order;
  const head = el('div', { class: 'story-head card' },
    el('span', { class: 'id' }, o.id),
    el('span', {}, 'user ', el('a', { href: '#order/user/' + enc(o.user_id) }, o.user_id)),
    stateBadge(o.state),
    el('span', {}, money(o.amount_cents)),
    el('span', { class: 'muted' }, o.items.map((i) => `${i.qty}× ${i.sku}`).join(', ')),
    el('span', { class: 'muted' }, 'created ' + when(o.created_at)),
    o.paid_at ? el('span', { class: 'muted' }, 'paid ' + when(o.paid_at)) : null,
    o.closed_at ? el('span', { class: 'muted' }, `closed ${when(o.closed_at)} (${o.close_reason})`) : null);
  const timeline = el('ol', { class: 'timeline', id: 'story-timeline' }, trace.changes.map((c) => {
    const before = c.before && c.before.state;
    const after = c.after && c.after.state;
    return el('li', { dataset: { offset: c.offset } },
      el('div', {}, el('strong', {}, c.op === 'insert' ? 'created' : `${dash(before)} → ${dash(after)}`),
        ' ', el('span', { class: 'when' }, `${when(c.at)} · offset ${c.offset}`)),
      el('div', { class: 'diff' }, diff(c.before, c.after)
        .filter(([key]) => c.op !== 'insert' || ['state', 'amount_cents', 'expires_at'].includes(key))
        .map(([key, b, a]) => el('div', {}, `${key}: `,
          c.op === 'insert' ? null : el('span', { class: 'before' }, short(b === undefined ? null : b, 60)),
          c.op === 'insert' ? null : ' → ',
          el('span', { class: 'after' }, short(a === undefined ? null : a, 60))))));
  }));
  const messages = trace.messages.map((m) => {
    const deliveries = el('table');
    table(deliveries, [
      ['Group', (d) => d.group],
      ['Status', deliveryBadge],
      ['Attempts', (d) => d.attempts.length, 'num'],
      ['Last error', (d) => dash(d.last_error)],
      ['Acked', (d) => when(d.acked_at)],
      ['Dead since', (d) => when(d.dead_at)],
    ], m.deliveries, { empty: 'No subscription reads this topic.', key: (d) => d.group });
    return el('div', { class: 'message card', dataset: { topic: m.topic, id: m.id } },
      el('div', { class: 'head' },
        el('span', { class: 'topic' }, m.topic),
        el('span', { class: 'mono muted' }, m.id),
        el('span', { class: 'muted' }, `offset ${m.offset} · published ${when(m.published_at)}`)),
      deliveries);
  });
  show($('order-story'), head,
    el('h3', {}, 'Timeline'), timeline,
    trace.complete ? null : el('p', { class: 'warning' }, `The trace stops at change offset ${trace.next}; older records were not examined.`),
    trace.pruned ? el('p', { class: 'warning' }, 'Part of this order\'s history was pruned from the change stream.') : null,
    el('h3', {}, 'Messages it caused'),
    messages.length ? messages : el('p', { class: 'muted' }, 'None.'));
}

function openOrder(event) {
  event.preventDefault();
  const id = $('order-query').value.trim();
  if (id) location.hash = '#order/' + enc(id);
}

function openUser() {
  const user = $('order-query').value.trim();
  if (user) location.hash = '#order/user/' + enc(user);
}

// ---- Stock

async function loadStock() {
  const s = state.stock;
  const query = [`limit=50`];
  if (s.after) query.push('after=' + enc(s.after));
  if (s.q) query.push('q=' + enc(s.q));
  const [page, sale] = await Promise.all([
    api('GET', '/admin/skus?' + query.join('&')),
    api('GET', '/admin/seckill'),
  ]);
  s.next = page.next;
  $('stock-next').disabled = !page.next;
  $('stock-first').disabled = !s.after;
  const created = rate('seckill.created', sale.created);
  const soldOut = rate('seckill.sold_out', sale.sold_out);
  show($('stock-sale'),
    figure('Flash-sale purchases', perSec(created === null ? lastRate('seckill.created') : created), 'seckill.created'),
    figure('Sold-out answers', perSec(soldOut === null ? lastRate('seckill.sold_out') : soldOut), 'seckill.sold_out'),
    figure('Limit exceeded', sale.limit_exceeded),
    figure('Overloaded (429)', sale.overloaded),
    figure('Answered by', 'node ' + sale.node_id));
  for (const sku of page.skus) rate('sku.' + sku.sku, sku.reserved + sku.sold);
  table($('stock-table'), [
    ['SKU', (k) => el('span', { class: 'mono' }, k.sku)],
    ['Price', (k) => money(k.price_cents), 'num'],
    ['Available', (k) => k.available, 'num'],
    ['Reserved', (k) => k.reserved, 'num'],
    ['Sold', (k) => k.sold, 'num'],
    ['Per-user limit', (k) => (k.per_user_limit ? k.per_user_limit : 'none'), 'num'],
    ['Taken per second', (k) => el('span', { class: 'rate-cell' },
      perSec(lastRate('sku.' + k.sku)), sparkline('sku.' + k.sku, true))],
    ['', (k) => (k.sold_out ? badge('sold out', 'bad') : badge('on sale', 'ok'))],
  ], page.skus, { empty: s.q ? `No SKU starts with "${s.q}".` : 'No SKUs loaded.', key: (k) => k.sku });
}

function searchStock(event) {
  event.preventDefault();
  state.stock = { after: null, pages: [], q: $('stock-query').value.trim() };
  refresh();
}

function stockPage(next) {
  const s = state.stock;
  if (next && s.next) {
    s.pages.push(s.after);
    s.after = s.next;
  } else if (!next) {
    s.after = null;
    s.pages = [];
  }
  refresh();
}

// ---- Queues

async function loadQueues() {
  const [topics, subs] = await Promise.all([
    api('GET', '/admin/topics'),
    api('GET', '/admin/subscriptions'),
  ]);
  for (const t of topics.topics) rate('topic.' + t.topic, t.head);
  table($('topics-table'), [
    ['Topic', (t) => el('span', { class: 'mono' }, t.topic)],
    ['Head', (t) => t.head, 'num'],
    ['Retention floor', (t) => t.floor, 'num'],
    ['Held', (t) => t.held, 'num'],
    ['Last minute', (t) => t.published_last_minute, 'num'],
    ['Publish rate', (t) => el('span', { class: 'rate-cell' },
      perSec(lastRate('topic.' + t.topic) ?? t.publish_rate_per_sec), sparkline('topic.' + t.topic, true))],
    ['Subscriptions', (t) => t.subscriptions.join(', ') || '—'],
  ], topics.topics, { empty: 'No topic yet.', key: (t) => t.topic });
  table($('subs-table'), [
    ['Group', (g) => el('span', { class: 'mono' }, g.group)],
    ['Topic', (g) => g.topic],
    ['Mode', (g) => (g.push ? 'push' : 'pull')],
    ['Backlog', (g) => g.backlog, 'num'],
    ['In flight', (g) => `${g.in_flight} / ${g.max_in_flight}`, 'num'],
    ['Rate limit', (g) => (g.rate_per_sec ? g.rate_per_sec + '/s' : 'none'), 'num'],
    ['Oldest unacked', (g) => age(g.oldest_unacked_age_ms), 'num'],
    ['Delivered', (g) => g.delivered, 'num'],
    ['Dead', (g) => (g.dead ? el('a', { href: '#dead', onclick: () => { state.dead.group = g.group; } }, String(g.dead)) : 0), 'num'],
    ['State', (g) => (g.paused ? badge('paused', 'warn') : badge('running', 'ok'))],
    ['', (g) => el('span', { class: 'inline-actions' },
      el('button', { type: 'button', class: 'small secondary', onclick: () => pauseGroup(g.group, !g.paused) }, g.paused ? 'Resume' : 'Pause'),
      el('button', { type: 'button', class: 'small danger', onclick: () => resetGroup(g) }, 'Reset…'))],
  ], subs.subscriptions, { empty: 'No subscription yet.', key: (g) => g.group });
}

async function pauseGroup(group, paused) {
  try {
    await api('POST', `/admin/subscriptions/${enc(group)}/${paused ? 'pause' : 'resume'}`, {});
    setStatus(`${group} ${paused ? 'paused' : 'resumed'}`);
  } catch (e) {
    setStatus(e.message, true);
  }
  refresh();
}

function resetGroup(group) {
  const choice = el('select', { id: 'reset-to' },
    el('option', { value: 'earliest' }, 'the earliest message held (delivers all again)'),
    el('option', { value: 'latest' }, 'the latest message (skips the backlog)'),
    el('option', { value: 'offset' }, 'after an offset'),
    el('option', { value: 'time' }, 'a time'));
  const value = el('input', { id: 'reset-value', placeholder: 'offset, or time (2024-05-01T12:00:00Z)' });
  confirmAction(`Move ${group.group}'s position on ${group.topic} to:`, [choice, value], 'Reset', async () => {
    const to = choice.value;
    const body = { to };
    if (to === 'offset') body.offset = Number(value.value);
    if (to === 'time') body.at = value.value.trim();
    await api('POST', `/admin/subscriptions/${enc(group.group)}/reset`, body);
    setStatus(`${group.group} reset to ${to}`);
  });
}

// ---- a confirmation dialog

function confirmAction(text, extra, okLabel, action) {
  $('confirm-text').textContent = text;
  show($('confirm-extra'), extra || []);
  $('confirm-ok').textContent = okLabel;
  $('confirm').hidden = false;
  const close = () => {
    $('confirm').hidden = true;
    $('confirm-ok').onclick = null;
  };
  $('confirm-cancel').onclick = close;
  $('confirm-ok').onclick = async () => {
    close();
    try {
      await action();
    } catch (e) {
      setStatus(e.message, true);
      const result = $('dead-result');
      result.textContent = e.message;
      result.classList.add('error');
    }
    refresh();
  };
}

// ---- Dead letters

async function loadDead() {
  const subs = await api('GET', '/admin/subscriptions');
  const groups = subs.subscriptions;
  const d = state.dead;
  if (!d.group || !groups.some((g) => g.group === d.group)) {
    const withDead = groups.find((g) => g.dead > 0);
    d.group = withDead ? withDead.group : (groups[0] && groups[0].group);
  }
  const select = $('dead-group');
  if (document.activeElement !== select) {
    show(select, groups.map((g) => el('option', { value: g.group, selected: g.group === d.group }, `${g.group} (${g.dead} dead)`)));
  }
  if (!d.group) {
    table($('dead-table'), [['', () => '']], [], { empty: 'No subscription yet.' });
    return;
  }
  const query = ['limit=100'];
  if (d.q) query.push('q=' + enc(d.q));
  const page = await api('GET', `/admin/subscriptions/${enc(d.group)}/dead?${query.join('&')}`);
  const ids = new Set(page.dead.map((x) => x.id));
  for (const id of [...d.selected]) if (!ids.has(id)) d.selected.delete(id);
  const all = el('input', {
    type: 'checkbox',
    'aria-label': 'select all',
    checked: page.dead.length > 0 && d.selected.size === page.dead.length,
    onchange: (e) => {
      d.selected = new Set(e.target.checked ? page.dead.map((x) => x.id) : []);
      loadDead();
    },
  });
  const columns = [
    [page.dead.length ? all : '', (x) => el('input', {
      type: 'checkbox',
      class: 'pick',
      'aria-label': 'select ' + x.id,
      checked: d.selected.has(x.id),
      onchange: (e) => { if (e.target.checked) d.selected.add(x.id); else d.selected.delete(x.id); },
    })],
    ['Id', (x) => el('span', { class: 'mono' }, x.id)],
    ['Key', (x) => dash(x.key)],
    ['Payload', (x) => short(x.payload, 160), 'payload'],
    ['Attempts', (x) => x.attempts.length, 'num'],
    ['Last error', (x) => dash(x.attempts.length ? x.attempts[x.attempts.length - 1].error : null)],
    ['Dead since', (x) => when(x.dead_at)],
  ];
  table($('dead-table'), columns, page.dead, {
    empty: d.q ? `No dead letter of ${d.group} holds "${d.q}".` : `${d.group} has no dead letters.`,
    key: (x) => x.id,
  });
}

function searchDead(event) {
  event.preventDefault();
  state.dead.q = $('dead-query').value.trim();
  state.dead.selected.clear();
  clearResult();
  refresh();
}

function clearResult() {
  const result = $('dead-result');
  result.textContent = '';
  result.classList.remove('error');
}

async function deadAction(verb, everything) {
  const d = state.dead;
  const ids = [...d.selected];
  if (!d.group) return;
  if (!everything && ids.length === 0) {
    const result = $('dead-result');
    result.textContent = 'Select dead letters first.';
    result.classList.add('error');
    return;
  }
  const what = everything ? `every dead letter of ${d.group}` : `${ids.length} dead letter${ids.length === 1 ? '' : 's'} of ${d.group}`;
  const run = async () => {
    const answer = await api('POST', `/admin/subscriptions/${enc(d.group)}/dead/${verb}`, everything ? {} : { ids });
    const count = verb === 'redrive' ? answer.redriven : answer.purged;
    d.selected.clear();
    const left = await api('GET', '/admin/subscriptions');
    const group = left.subscriptions.find((g) => g.group === d.group);
    clearResult();
    $('dead-result').textContent = `${verb === 'redrive' ? 'Redriven' : 'Purged'}: ${count}. ${d.group} now has ${group ? group.dead : 0} dead letters.`;
  };
  if (verb === 'purge' || everything) {
    confirmAction(`${verb === 'purge' ? 'Delete for good' : 'Deliver again'} ${what}?`, [], verb === 'purge' ? 'Purge' : 'Redrive', run);
    return;
  }
  try {
    await run();
  } catch (e) {
    $('dead-result').textContent = e.message;
    $('dead-result').classList.add('error');
  }
  refresh();
}

// ---- Timers

async function loadTimers() {
  const [timers, topics] = await Promise.all([
    api('GET', '/admin/timers'),
    api('GET', '/admin/topics'),
  ]);
  const fired = rate('timers.fired', timers.fired);
  const closed = topics.topics.find((t) => t.topic === 'order.closed');
  rate('closes', closed ? closed.head : 0);
  show($('timer-figures'),
    figure('Pending', timers.pending),
    figure('Next due', timers.next_due_at ? when(timers.next_due_at) : 'none'),
    figure('Fired', timers.fired),
    figure('Fired per second', perSec(fired === null ? lastRate('timers.fired') : fired), 'timers.fired'),
    figure('Firing lag p99', timers.lag_ms_p99 === null ? '—' : timers.lag_ms_p99 + ' ms'),
    figure('Orders closed, last minute', closed ? closed.published_last_minute : 0, 'closes'),
    figure('Orders closed in all', closed ? closed.head : 0));
  const recent = el('table', { id: 'timer-recent-closes' });
  table(recent, [
    ['Order', (c) => el('a', { href: '#order/' + enc(c.order_id) }, c.order_id)],
    ['User', (c) => dash(c.user_id)],
    ['Closed', (c) => when(c.closed_at)],
    ['Reason', (c) => badge(dash(c.reason), c.reason === 'expired' ? 'warn' : '')],
  ], timers.recent_closes || [], { empty: 'No order has been closed yet.', key: (c) => c.order_id });
  show($('timer-closes'), el('h3', {}, 'Recent closes'), recent);
}

// ---- start

function start() {
  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', signOut);
  $('order-form').addEventListener('submit', openOrder);
  $('order-user').addEventListener('click', openUser);
  $('stock-form').addEventListener('submit', searchStock);
  $('stock-first').addEventListener('click', () => stockPage(false));
  $('stock-next').addEventListener('click', () => stockPage(true));
  $('dead-form').addEventListener('submit', searchDead);
  $('dead-group').addEventListener('change', (e) => {
    state.dead.group = e.target.value;
    state.dead.selected.clear();
    clearResult();
    refresh();
  });
  $('dead-redrive-selected').addEventListener('click', () => deadAction('redrive', false));
  $('dead-redrive-all').addEventListener('click', () => deadAction('redrive', true));
  $('dead-purge-selected').addEventListener('click', () => deadAction('purge', false));
  $('dead-purge-all').addEventListener('click', () => deadAction('purge', true));
  window.addEventListener('hashchange', route);
  api('GET', '/admin/cluster').then(() => {
    $('login').hidden = true;
    route();
  }, (e) => {
    if (e.status === 401 || e.status === 403) showLogin(state.token ? 'The saved token was refused.' : '');
    else {
      $('login').hidden = true;
      route();
    }
  });
}

document.addEventListener('DOMContentLoaded', start);
