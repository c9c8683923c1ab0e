// Status page: redraws the node and plot tables from /api/status.
(function () {
  'use strict';
  var root = document.getElementById('status-root');
  if (!root) return;
  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function iso(sec) {
    if (sec === null || sec === undefined) return '–';
    var d = new Date(sec * 1000);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  }
  function secs(v) { return (v === null || v === undefined) ? '–' : v.toFixed(1) + ' s'; }
  function hms(v) {
    if (v === null || v === undefined) return '–';
    var t = Math.max(0, Math.floor(v));
    return Math.floor(t / 3600) + ':' + pad(Math.floor(t / 60) % 60) + ':' + pad(t % 60);
  }
  // As health.rs: the button that would change nothing is disabled.
  function buttons(target, state) {
    return ['stop', 'start', 'restart'].map(function (v) {
      var off = (v === 'stop' && state === 'STOPPED') || (v === 'start' && state === 'RUNNING');
      return '<button type="button" class="ctl" data-cmd="' + esc(v + ' ' + target) + '"' + (off ? ' disabled' : '') + '>' + v + '</button>';
    }).join(' ');
  }
  // The same table as the server draws (health.rs, render_nodes).
  function nodesTable(nodes, ctl) {
    var groups = [];
    nodes.forEach(function (n) { var g = n.group || ''; if (groups.indexOf(g) < 0) groups.push(g); });
    var h = '<table class="grid nodes"><tr><th>node</th><th>control</th><th>uptime</th><th>restarts</th><th>activity</th>' +
      '<th>in</th><th>out</th><th>drops</th><th>event-time lag</th><th>last output</th>' + (ctl ? '<th></th>' : '') + '</tr>';
    groups.forEach(function (g) {
      if (g) h += '<tr class="group"><th colspan="10">' + esc(g) + '</th>' + (ctl ? '<th title="every node of ' + esc(g) + '">' + buttons(g + ':*', '') + '</th>' : '') + '</tr>';
      nodes.filter(function (n) { return (n.group || '') === g; }).forEach(function (n) {
        var drops = 0;
        Object.keys(n.drops || {}).forEach(function (k) { drops += n.drops[k]; });
        var cs = n.control_state || '';
        h += '<tr data-node="' + esc(n.name) + '"><td>' + esc(n.name) + '</td><td class="ctl-' + esc(cs.toLowerCase()) + '">' + esc(cs) +
          (n.reason ? ' <span class="err">(' + esc(n.reason) + ')</span>' : '') + '</td><td>' + hms(n.uptime_seconds) + '</td><td>' +
          (n.restarts === undefined ? '–' : n.restarts) + '</td><td class="state-' + esc(n.state) + '">' + esc(n.state) + '</td><td>' +
          n.records_in + '</td><td>' + n.records_out + '</td><td>' + drops + '</td><td>' + secs(n.lag_seconds) +
          '</td><td>' + iso(n.last_output_utc) + '</td>' + (ctl ? '<td>' + buttons(n.name, cs) + '</td>' : '') + '</tr>';
      });
    });
    return h + '</table>';
  }
  function silencesTable(list, ctl) {
    if (!list.length) return '';
    var h = '<h3>Silences</h3><table class="grid silences"><tr><th>pattern</th><th>until</th><th>by</th><th>reason</th><th></th></tr>';
    list.forEach(function (x) {
      h += '<tr><td><code>' + esc(x.pattern) + '</code></td><td>' + iso(x.until_utc) + '</td><td>' + esc(x.user) + '</td><td>' +
        esc(x.reason || '') + '</td><td>' + (ctl ? '<button type="button" class="ctl" data-cmd="' + esc('unsilence ' + x.pattern) +
        '">unsilence</button>' : '') + '</td></tr>';
    });
    return h + '</table>';
  }
  // As health.rs, render_latencies (latency::human for the units).
  function human(s) {
    if (s < 1) return (s * 1e3).toFixed(1) + 'ms';
    if (s < 600) return s.toFixed(2) + 's';
    if (s < 3 * 3600) return (s / 60).toFixed(1) + 'min';
    if (s < 3 * 86400) return (s / 3600).toFixed(1) + 'h';
    return (s / 86400).toFixed(1) + 'd';
  }
  function latencyTable(rows) {
    if (!rows || !rows.length) return '';
    var h = '<h3>Latency</h3><table class="grid latency"><tr><th>distribution</th><th>labels</th><th>n</th><th>p50</th><th>p99</th><th>max</th></tr>';
    rows.forEach(function (r) {
      h += '<tr><td>' + esc(r.name) + '</td><td>' + esc(r.labels) + '</td><td>' + r.count + '</td><td>' + human(r.p50) +
        '</td><td>' + human(r.p99) + '</td><td>' + human(r.max) + '</td></tr>';
    });
    return h + '</table>';
  }
  var reply = document.getElementById('control-reply');
  function refresh() {
    fetch('api/status', { cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { return r.json(); }).then(draw).catch(function () {});
  }
  // One endpoint for every control: the command line, as `km3mon ctl` takes it.
  function send(command) {
    fetch('api/control', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ command: command })
    }).then(function (r) { return r.json(); }).then(function (j) {
      if (reply) { reply.hidden = false; reply.textContent = '$ ' + command + '\n' + (j.text || j.error || ''); }
      refresh();
    }).catch(function (e) {
      if (reply) { reply.hidden = false; reply.textContent = '$ ' + command + '\nfailed: ' + e; }
    });
  }
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest ? ev.target.closest('button[data-cmd]') : null;
    if (!b) return;
    var cmd = b.getAttribute('data-cmd');
    if (/^(stop|restart) /.test(cmd) && !window.confirm(cmd + '?')) return;
    send(cmd);
  });
  var form = document.getElementById('silence-form');
  if (form) {
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var f = form.elements;
      var words = ['silence', f.pattern.value.trim(), f.duration.value.trim()];
      if (f.reason.value.trim()) words.push(f.reason.value.trim());
      send(words.join(' '));
    });
  }
  function draw(s) {
    var p = s.pipeline;
    var ctl = !!(s.control && s.control.available);
    var h = '<h3>Pipeline nodes</h3><p class="muted">source: ' + esc(p.source) +
      (p.error ? ' — <span class="err">' + esc(p.error) + '</span>' : '') + '</p>' + nodesTable(p.nodes, ctl) +
      silencesTable((s.control && s.control.silences) || [], ctl) + latencyTable(p.latencies);
    h += '<h3>Plots</h3><table class="grid"><tr><th>plot</th><th>data time</th><th>updated</th><th>age</th><th></th></tr>';
    s.plots.forEach(function (pl) {
      h += '<tr' + (pl.stale ? ' class="stale"' : '') + '><td><a href="plot_' + esc(pl.name) + '.html">' + esc(pl.name) +
        '</a></td><td>' + iso(pl.data_time) + '</td><td>' + iso(pl.updated) + '</td><td>' + secs(pl.age_seconds) +
        '</td><td>' + (pl.stale ? 'STALE' : 'ok') + '</td></tr>';
    });
    h += '</table><h3>Recent alerts</h3><ul class="alerts">';
    s.alerts.forEach(function (a) { h += '<li><code>' + esc(JSON.stringify(a)) + '</code></li>'; });
    root.innerHTML = h + '</ul>';
  }
  setInterval(refresh, 2000);
})();
