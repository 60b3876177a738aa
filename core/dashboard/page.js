/*
 * page.js - the scalebus dashboard (docs/admin.md, "Dashboard"). Polls /pipelines every second
 * and each scaler's /scalers/ID/history every few seconds; draws each pipeline as its graph, each
 * scaler's counts over the last hour, the latest decisions and the errors; pause and resume ask
 * for the admin token when the endpoint wants one (kept in sessionStorage, for this tab only).
 *
 * Everything the daemon sends reaches the page as text (textContent, SVG text nodes, dataset):
 * never as markup, so no id, reason or error can inject HTML.
 */
'use strict';
(function () {
  var TOKEN_KEY = 'scalebus.admin.token';
  var POLL_MS = 1000;
  var HISTORY_MS = 5000;
  var HOUR_MS = 3600 * 1000;
  var MAX_DECISIONS = 50;
  var SVGNS = 'http://www.w3.org/2000/svg';

  var shown = {
    shape: '',          /* the ids and edges drawn: redrawn only when they change */
    nodes: {},          /* id -> {g, value, rectClass} in the graphs */
    cards: {},          /* scaler id -> its card's parts */
    decisions: [],      /* newest first */
    decisionSeen: {},   /* connector id -> last_decision_at seen */
    histories: {},      /* scaler id -> the last /scalers/ID/history */
    historyAt: 0,
    waitingForToken: false,
    retry: null         /* what to do once a token is given */
  };

  function $(id) { return document.getElementById(id); }

  /* An element with a class and children (strings become text nodes). */
  function el(tag, cls) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  function setToken(t) { try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ } }

  function AuthError(msg) { this.message = msg; this.auth = true; }

  /* One request to the admin API: the parsed JSON, or a thrown Error (AuthError on 401). */
  function api(method, path) {
    var headers = {};
    var t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    return fetch(path, { method: method, headers: headers, cache: 'no-store', credentials: 'omit' })
      .then(function (r) {
        if (r.status === 401) throw new AuthError('the admin endpoint wants a valid token');
        if (!r.ok) return r.text().then(function (body) { throw new Error(method + ' ' + path + ': ' + r.status + ' ' + body.slice(0, 200)); });
        return r.json();
      });
  }

  function setStatus(text, bad) {
    var s = $('status');
    s.textContent = text;
    s.className = bad ? 'status bad' : 'status';
  }

  function askToken(why, then) {
    shown.retry = then || null;
    shown.waitingForToken = true;
    $('token-why').textContent = why;
    $('token-form').hidden = false;
    $('token-input').focus();
  }

  /* A component's problem to highlight: its last error, or a scaler's failed last action. */
  function problem(c) {
    if (c.last_error) return { text: c.last_error, at: c.last_error_at };
    if (c.kind === 'scaler' && c.last_action && c.last_action.indexOf('failed') === 0)
      return { text: c.last_action, at: c.last_action_at };
    return null;
  }

  function fmtNumber(v) {
    if (v === null || v === undefined) return '–';
    return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
  }
  function fmtTime(iso) {
    if (!iso) return 'never';
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString();
  }

  /* ---- pipelines: connected groups of components ------------------------------------------- */

  function groups(doc) {
    var parent = {};
    function find(x) { while (parent[x] !== x) { parent[x] = parent[parent[x]]; x = parent[x]; } return x; }
    doc.components.forEach(function (c) { parent[c.id] = c.id; });
    doc.edges.forEach(function (e) {
      if (parent[e.from] === undefined || parent[e.to] === undefined) return;
      parent[find(e.from)] = find(e.to);
    });
    var byRoot = {};
    var order = [];
    doc.components.forEach(function (c) {
      var r = find(c.id);
      if (!byRoot[r]) { byRoot[r] = []; order.push(r); }
      byRoot[r].push(c);
    });
    return order.map(function (r) { return byRoot[r]; });
  }

  /* Columns: triggers first, each connector after what feeds it, scalers last. */
  function layout(comps, edges) {
    var ids = {};
    comps.forEach(function (c) { ids[c.id] = c; });
    var depth = {};
    comps.forEach(function (c) { depth[c.id] = c.kind === 'trigger' ? 0 : 1; });
    for (var pass = 0; pass < comps.length; pass++) {
      var moved = false;
      edges.forEach(function (e) {
        if (!ids[e.from] || !ids[e.to]) return;
        if (depth[e.to] < depth[e.from] + 1 && depth[e.from] + 1 <= comps.length) { depth[e.to] = depth[e.from] + 1; moved = true; }
      });
      if (!moved) break;
    }
    var maxDepth = 0;
    comps.forEach(function (c) { if (c.kind !== 'scaler') maxDepth = Math.max(maxDepth, depth[c.id]); });
    comps.forEach(function (c) { if (c.kind === 'scaler') depth[c.id] = maxDepth + 1; });
    var rows = {};
    var pos = {};
    comps.forEach(function (c) {
      var col = depth[c.id];
      rows[col] = (rows[col] || 0) + 1;
      pos[c.id] = { col: col, row: rows[col] - 1 };
    });
    var nrows = 0;
    for (var k in rows) nrows = Math.max(nrows, rows[k]);
    return { pos: pos, cols: maxDepth + 2, rows: nrows };
  }

  var BOX_W = 200, BOX_H = 62, GAP_X = 70, GAP_Y = 16, PAD = 10;

  function drawGraphs(doc) {
    var box = $('graphs');
    clear(box);
    shown.nodes = {};
    var gs = groups(doc);
    if (!gs.length) { box.appendChild(el('p', 'empty', 'No pipeline yet.')); return; }
    gs.forEach(function (comps) {
      var inGroup = {};
      comps.forEach(function (c) { inGroup[c.id] = true; });
      var edges = doc.edges.filter(function (e) { return inGroup[e.from] && inGroup[e.to]; });
      var lay = layout(comps, edges);
      var w = PAD * 2 + lay.cols * BOX_W + (lay.cols - 1) * GAP_X;
      var h = PAD * 2 + lay.rows * BOX_H + (lay.rows - 1) * GAP_Y;
      var s = svg('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h, role: 'img' });
      var defs = svg('defs', {});
      var marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' });
      marker.appendChild(svg('path', { d: 'M0,0 L10,5 L0,10 z', 'class': 'arrow' }));
      defs.appendChild(marker);
      s.appendChild(defs);
      function at(id) {
        var p = lay.pos[id];
        return { x: PAD + p.col * (BOX_W + GAP_X), y: PAD + p.row * (BOX_H + GAP_Y) };
      }
      edges.forEach(function (e) {
        var a = at(e.from), b = at(e.to);
        var x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2;
        var mx = (x1 + x2) / 2;
        var path = svg('path', { d: 'M' + x1 + ',' + y1 + ' C' + mx + ',' + y1 + ' ' + mx + ',' + y2 + ' ' + x2 + ',' + y2, 'class': 'edge', 'marker-end': 'url(#arrow)' });
        path.dataset.from = e.from;
        path.dataset.to = e.to;
        s.appendChild(path);
      });
      comps.forEach(function (c) {
        var p = at(c.id);
        var g = svg('g', { 'class': 'node ' + c.kind, transform: 'translate(' + p.x + ',' + p.y + ')' });
        g.dataset.id = c.id;
        g.appendChild(svg('rect', { width: BOX_W, height: BOX_H }));
        var name = svg('text', { x: 8, y: 17, 'class': 'name' }, c.id);
        var kind = svg('text', { x: 8, y: 33, 'class': 'kind' }, c.kind + ' · ' + c.type);
        var value = svg('text', { x: 8, y: 52, 'class': 'value' }, '');
        var title = svg('title', {}, '');
        g.appendChild(title);
        g.appendChild(name);
        g.appendChild(kind);
        g.appendChild(value);
        s.appendChild(g);
        shown.nodes[c.id] = { g: g, value: value, title: title, kind: c.kind, kindText: kind, kindLabel: c.kind + ' · ' + c.type };
      });
      var wrap = el('div', 'pipeline');
      var names = comps.filter(function (c) { return c.kind === 'trigger'; }).map(function (c) { return c.id; });
      var ends = comps.filter(function (c) { return c.kind === 'scaler'; }).map(function (c) { return c.id; });
      wrap.appendChild(el('h3', null, (names.join(', ') || '(no trigger)') + ' → ' + (ends.join(', ') || '(no scaler)')));
      wrap.appendChild(s);
      box.appendChild(wrap);
    });
  }

  function nodeValue(c) {
    if (c.kind === 'trigger') return 'value ' + fmtNumber(c.last_value) + ' · ' + c.readings + ' readings';
    if (c.kind === 'connector') return 'decision ' + fmtNumber(c.last_decision);
    return 'desired ' + fmtNumber(c.desired) + ' · running ' + fmtNumber(c.running_count);
  }

  function updateNodes(doc) {
    doc.components.forEach(function (c) {
      var n = shown.nodes[c.id];
      if (!n) return;
      n.value.textContent = nodeValue(c);
      n.kindText.textContent = n.kindLabel + (c.paused ? ' · paused' : '');
      var bad = problem(c);
      n.title.textContent = bad ? 'error: ' + bad.text : (c.last_reason || c.last_action || '');
      var cls = 'node ' + c.kind;
      if (bad) cls += ' error';
      if (c.paused) cls += ' paused';
      if (!c.running) cls += ' stopped';
      n.g.setAttribute('class', cls);
    });
  }

  /* ---- scalers: counts, controls and the chart ------------------------------------------------ */

  function drawCards(doc) {
    var box = $('scalers');
    clear(box);
    shown.cards = {};
    var scalers = doc.components.filter(function (c) { return c.kind === 'scaler'; });
    if (!scalers.length) { box.appendChild(el('p', 'empty', 'No scaler yet.')); return; }
    scalers.forEach(function (c) {
      var card = el('div', 'scaler-card');
      card.dataset.id = c.id;
      var counts = el('span', 'counts');
      var badges = el('span', 'badges');
      var pause = el('button', 'pause', 'Pause');
      var resume = el('button', 'resume', 'Resume');
      pause.type = resume.type = 'button';
      pause.addEventListener('click', function () { control(c.id, 'pause'); });
      resume.addEventListener('click', function () { control(c.id, 'resume'); });
      card.appendChild(el('div', 'head', el('span', 'name', c.id), el('span', 'kind', c.type), counts, badges, pause, resume));
      var action = el('p', 'action');
      var error = el('p', 'error-text');
      var chart = svg('svg', { 'class': 'chart', viewBox: '0 0 760 170', preserveAspectRatio: 'none' });
      var legend = el('p', 'legend', el('span', 'desired-key', '━ desired'), ' ', el('span', 'running-key', '╍ running'), ' (last hour)');
      card.appendChild(action);
      card.appendChild(error);
      card.appendChild(chart);
      card.appendChild(legend);
      box.appendChild(card);
      shown.cards[c.id] = { card: card, counts: counts, badges: badges, pause: pause, resume: resume, action: action, error: error, chart: chart };
    });
  }

  function updateCards(doc) {
    doc.components.forEach(function (c) {
      var k = shown.cards[c.id];
      if (!k) return;
      k.counts.textContent = 'desired ' + fmtNumber(c.desired) + ' · running ' + fmtNumber(c.running_count) +
        ' · min ' + fmtNumber(c.min) + ', max ' + fmtNumber(c.max);
      clear(k.badges);
      if (c.paused) k.badges.appendChild(el('span', 'badge paused', 'paused'));
      if (c.override) k.badges.appendChild(el('span', 'badge override', 'override ' + fmtNumber(c.override.desired) + ' until ' + fmtTime(c.override.until)));
      k.pause.disabled = !!c.paused;
      k.resume.disabled = !c.paused;
      k.action.textContent = c.last_action ? 'last action (' + fmtTime(c.last_action_at) + '): ' + c.last_action : 'no action yet';
      k.error.textContent = c.last_error ? 'error (' + fmtTime(c.last_error_at) + '): ' + c.last_error : '';
      var cls = 'scaler-card';
      if (problem(c)) cls += ' error';
      if (c.paused) cls += ' paused';
      k.card.className = cls;
      drawChart(k.chart, shown.histories[c.id], c);
    });
  }

  /* Step lines of desired and running over [now - 1 h, now]. */
  function drawChart(chart, hist, c) {
    clear(chart);
    var W = 760, H = 170, L = 36, R = 8, T = 8, B = 20;
    var now = hist ? hist.now : Date.now();
    var points = hist ? hist.points : [];
    /* The last hour, or less while the daemon has run less (so the first minutes show). */
    var from = now - HOUR_MS;
    if (points.length) from = Math.max(from, Math.min(points[0][0], now) - 60 * 1000);
    var span = Math.max(now - from, 1);
    var top = 1;
    points.forEach(function (p) {
      if (p[1] !== null) top = Math.max(top, p[1]);
      if (p[2] !== null) top = Math.max(top, p[2]);
    });
    if (typeof c.max === 'number' && c.max <= 1000) top = Math.max(top, c.max);
    function x(t) { return L + (W - L - R) * (Math.max(t, from) - from) / span; }
    function y(v) { return T + (H - T - B) * (1 - v / top); }
    chart.appendChild(svg('line', { x1: L, y1: y(0), x2: W - R, y2: y(0), 'class': 'axis' }));
    chart.appendChild(svg('line', { x1: L, y1: T, x2: L, y2: y(0), 'class': 'axis' }));
    chart.appendChild(svg('text', { x: L - 6, y: y(top) + 10, 'text-anchor': 'end', 'class': 'label' }, fmtNumber(top)));
    chart.appendChild(svg('text', { x: L - 6, y: y(0), 'text-anchor': 'end', 'class': 'label' }, '0'));
    function ago(ms) { return ms >= 120000 ? '-' + Math.round(ms / 60000) + ' min' : '-' + Math.round(ms / 1000) + ' s'; }
    [[ago(span), 0], [ago(span / 2), 0.5], ['now', 1]].forEach(function (m) {
      chart.appendChild(svg('text', { x: L + (W - L - R) * m[1], y: H - 4, 'text-anchor': m[1] === 0 ? 'start' : m[1] === 1 ? 'end' : 'middle', 'class': 'label' }, m[0]));
    });
    [['desired', 1], ['running', 2]].forEach(function (s) {
      var d = '';
      var last = null;
      points.forEach(function (p) {
        var v = p[s[1]];
        if (v === null) return;
        if (last === null) d += 'M' + x(p[0]) + ',' + y(v);
        else d += ' H' + x(p[0]) + ' V' + y(v);
        last = v;
      });
      if (last === null) return;
      d += ' H' + x(now);
      var path = svg('path', { d: d, 'class': s[0] });
      chart.appendChild(path);
    });
  }

  /* ---- decisions and errors ------------------------------------------------------------------- */

  function noteDecisions(doc) {
    doc.components.forEach(function (c) {
      if (c.kind !== 'connector' || !c.last_decision_at) return;
      if (shown.decisionSeen[c.id] === c.last_decision_at) return;
      shown.decisionSeen[c.id] = c.last_decision_at;
      shown.decisions.unshift({ at: c.last_decision_at, id: c.id, value: c.last_decision, reason: c.last_reason || '' });
    });
    shown.decisions.sort(function (a, b) { return a.at < b.at ? 1 : a.at > b.at ? -1 : 0; });
    if (shown.decisions.length > MAX_DECISIONS) shown.decisions.length = MAX_DECISIONS;
  }

  /* A reason chain ("a -> 3; scaler max 4 -> 4") as its steps; its text stays the reason's. */
  function reasonCell(reason) {
    var td = el('td', 'reason');
    if (!reason) { td.appendChild(el('span', 'empty', '(no reason)')); return td; }
    reason.split('; ').forEach(function (step, i) {
      if (i) td.appendChild(el('span', 'sep', '; '));
      td.appendChild(el('span', 'step', step));
    });
    return td;
  }

  function drawDecisions() {
    var body = $('decisions').tBodies[0];
    clear(body);
    if (!shown.decisions.length) {
      var td = el('td', 'empty', 'No decision yet.');
      td.colSpan = 4;
      body.appendChild(el('tr', null, td));
      return;
    }
    shown.decisions.forEach(function (d) {
      var tr = el('tr', 'decision', el('td', null, fmtTime(d.at)), el('td', 'connector', d.id), el('td', 'num', fmtNumber(d.value)), reasonCell(d.reason));
      tr.dataset.id = d.id;
      body.appendChild(tr);
    });
  }

  function drawErrors(doc) {
    var list = $('errors');
    clear(list);
    var errs = doc.components.filter(problem).map(function (c) { return { c: c, p: problem(c) }; });
    errs.sort(function (a, b) { return a.p.at < b.p.at ? 1 : -1; });
    if (!errs.length) { list.appendChild(el('li', 'empty', 'None.')); return; }
    errs.forEach(function (e) {
      var c = e.c;
      var li = el('li', 'error', fmtTime(e.p.at) + ' ', el('strong', null, c.id), ' (' + c.kind + '): ', el('span', 'text', e.p.text));
      li.dataset.id = c.id;
      list.appendChild(li);
    });
  }

  /* ---- polling and controls ------------------------------------------------------------------- */

  function render(doc) {
    var shape = JSON.stringify([doc.components.map(function (c) { return [c.id, c.kind, c.type]; }), doc.edges]);
    if (shape !== shown.shape) {
      shown.shape = shape;
      drawGraphs(doc);
      drawCards(doc);
    }
    updateNodes(doc);
    noteDecisions(doc);
    updateCards(doc);
    drawDecisions();
    drawErrors(doc);
  }

  function fetchHistories(doc) {
    var scalers = doc.components.filter(function (c) { return c.kind === 'scaler'; });
    return Promise.all(scalers.map(function (c) {
      return api('GET', 'scalers/' + encodeURIComponent(c.id) + '/history')
        .then(function (h) { shown.histories[c.id] = h; })
        .catch(function (e) { if (e.auth) throw e; /* gone since: the next poll redraws */ });
    }));
  }

  var timer = null;
  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  function poll() {
    timer = null;
    if (shown.waitingForToken) return;
    api('GET', 'pipelines')
      .then(function (doc) {
        var wantHistory = Date.now() - shown.historyAt >= HISTORY_MS;
        return (wantHistory ? fetchHistories(doc).then(function () { shown.historyAt = Date.now(); }) : Promise.resolve())
          .then(function () { return doc; });
      })
      .then(function (doc) {
        render(doc);
        var n = doc.components.length;
        setStatus((doc.ready ? 'ready' : 'not ready') + ' · ' + n + ' component' + (n === 1 ? '' : 's') + ' · updated ' + new Date().toLocaleTimeString(), !doc.ready);
        document.body.dataset.updated = String(Date.now());
        schedule(POLL_MS);
      })
      .catch(function (e) {
        if (e.auth) {
          setStatus('waiting for the admin token', true);
          askToken(token() ? 'That token was refused: enter the admin token.' : 'The admin endpoint wants its token.', null);
          return;
        }
        setStatus('cannot reach the daemon: ' + (e.message || String(e)), true);
        schedule(POLL_MS * 3);
      });
  }

  function control(id, what) {
    api('POST', 'scalers/' + encodeURIComponent(id) + '/' + what)
      .then(function () {
        setStatus(id + ': ' + (what === 'pause' ? 'paused' : 'resumed'), false);
        shown.historyAt = 0;
        schedule(0);
      })
      .catch(function (e) {
        if (e.auth) askToken('To ' + what + ' ' + id + ', enter the admin token.', function () { control(id, what); });
        else setStatus(e.message || String(e), true);
      });
  }

  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = $('token-input').value.trim();
    if (/[^\x21-\x7e]/.test(t)) { $('token-why').textContent = 'A token is printable ASCII without spaces.'; return; }
    setToken(t);
    $('token-input').value = '';
    $('token-form').hidden = true;
    shown.waitingForToken = false;
    var then = shown.retry;
    shown.retry = null;
    if (then) then();
    schedule(0);
  });
  $('token-cancel').addEventListener('click', function () {
    $('token-form').hidden = true;
    shown.retry = null;
  });
  $('token-button').addEventListener('click', function () {
    askToken('Enter the admin token (kept for this tab only).', null);
  });
  drawDecisions();
  poll();
})();
