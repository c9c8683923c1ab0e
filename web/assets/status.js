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
  function draw(s) {
    var p = s.pipeline;
    var h = '<h3>Pipeline nodes</h3><p class="muted">source: ' + esc(p.source) +
      (p.error ? ' — <span class="err">' + esc(p.error) + '</span>' : '') + '</p>' +
      '<table class="grid"><tr><th>node</th><th>state</th><th>in</th><th>out</th><th>drops</th><th>event-time lag</th><th>last output</th></tr>';
    p.nodes.forEach(function (n) {
      var drops = 0;
      Object.keys(n.drops || {}).forEach(function (k) { drops += n.drops[k]; });
      h += '<tr><td>' + esc(n.name) + '</td><td class="state-' + esc(n.state) + '">' + esc(n.state) + '</td><td>' +
        n.records_in + '</td><td>' + n.records_out + '</td><td>' + drops + '</td><td>' + secs(n.lag_seconds) +
        '</td><td>' + iso(n.last_output_utc) + '</td></tr>';
    });
    h += '</table><h3>Plots</h3><table class="grid"><tr><th>plot</th><th>data time</th><th>updated</th><th>age</th><th></th></tr>';
    s.plots.forEach(function (pl) {
      h += '<tr' + (pl.stale ? ' class="stale"' : '') + '><td><a href="plot_' + esc(pl.name) + '.html">' + esc(pl.name) +
        '</a></td><td>' + iso(pl.data_time) + '</td><td>' + iso(pl.updated) + '</td><td>' + secs(pl.age_seconds) +
        '</td><td>' + (pl.stale ? 'STALE' : 'ok') + '</td></tr>';
    });
    h += '</table><h3>Recent alerts</h3><ul class="alerts">';
    s.alerts.forEach(function (a) { h += '<li><code>' + esc(JSON.stringify(a)) + '</code></li>'; });
    root.innerHTML = h + '</ul>';
  }
  setInterval(function () {
    fetch('api/status', { cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { return r.json(); }).then(draw).catch(function () {});
  }, 2000);
})();
