// Plot pages: swap an image as soon as the server reports a new version
// (server-sent events; polling /api/plots if they are unavailable), show
// every plot's data time, and mark plots that stopped updating as stale.
(function () {
  'use strict';
  var dataEl = document.getElementById('page-data');
  if (!dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var plots = data.plots || {};
  // Server clock minus ours: staleness is judged on the server's clock.
  var skew = data.now * 1000 - Date.now();
  var stale = data.stale || { 'default': 900, overrides: [] };

  function globRe(p) {
    return new RegExp('^' + p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$');
  }
  var overrides = (stale.overrides || []).map(function (o) { return [globRe(o[0]), o[1]]; });
  var patterns = (data.patterns || []).map(globRe);

  function limitFor(name) {
    for (var i = 0; i < overrides.length; i++) if (overrides[i][0].test(name)) return overrides[i][1];
    return stale['default'];
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function fmt(sec) {
    var d = new Date(sec * 1000);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  }
  function ago(s) {
    s = Math.max(0, Math.round(s));
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    if (s < 172800) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' d';
  }
  function figures(name) {
    var out = [];
    var all = document.querySelectorAll('figure[data-plot]');
    for (var i = 0; i < all.length; i++) if (all[i].getAttribute('data-plot') === name) out.push(all[i]);
    return out;
  }

  function caption(fig, p) {
    var el = fig.querySelector('.ptime');
    if (!el) return;
    if (!p || p.removed) {
      fig.classList.remove('stale');
      el.textContent = '';
      return;
    }
    var age = (Date.now() + skew) / 1000 - p.updated;
    var isStale = age > limitFor(p.name);
    fig.classList.toggle('stale', isStale);
    var t = p.data_time ? 'data ' + fmt(p.data_time) : 'written ' + fmt(p.updated);
    el.textContent = (isStale ? 'STALE: not updated for ' + ago(age) + ' · ' : '') + t +
      (isStale ? '' : ' · ' + ago(age) + ' ago');
    el.title = 'plot written ' + fmt(p.updated);
  }

  function show(fig, p) {
    var a = fig.querySelector('a');
    var img = fig.querySelector('img');
    var url = 'plots/' + encodeURIComponent(p.file) + '?v=' + p.v;
    if (!img) {
      img = document.createElement('img');
      img.alt = p.name;
      var ph = fig.querySelector('.placeholder');
      if (ph) ph.parentNode.removeChild(ph);
      (a || fig).insertBefore(img, (a || fig).firstChild);
      fig.classList.remove('missing');
      img.src = url;
    } else if (img.getAttribute('src') !== url) {
      // Load first, then swap: no flicker, no broken image mid-write.
      var next = new Image();
      next.onload = function () { img.src = url; };
      next.src = url;
    }
  }

  var reloading = false;
  function apply(p) {
    var figs = figures(p.name);
    if (!figs.length) {
      // A new plot matching one of the page's wildcards (a new DU): the
      // layout changed, rebuild it.
      if (!p.removed && !reloading && patterns.some(function (re) { return re.test(p.name); })) {
        reloading = true;
        setTimeout(function () { location.reload(); }, 500);
      }
      return;
    }
    if (p.removed) delete plots[p.name]; else plots[p.name] = p;
    figs.forEach(function (f) {
      if (!p.removed) show(f, p);
      caption(f, p.removed ? null : p);
    });
  }

  function refreshCaptions() {
    var all = document.querySelectorAll('figure[data-plot]');
    for (var i = 0; i < all.length; i++) caption(all[i], plots[all[i].getAttribute('data-plot')]);
  }
  refreshCaptions();
  setInterval(refreshCaptions, 1000);

  var polling = null;
  function poll() {
    fetch('api/plots', { cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        skew = j.now * 1000 - Date.now();
        var seen = {};
        j.plots.forEach(function (p) { seen[p.name] = 1; if (!plots[p.name] || plots[p.name].v !== p.v) apply(p); });
        Object.keys(plots).forEach(function (n) { if (!seen[n]) apply({ name: n, removed: true }); });
      })
      .catch(function () {});
  }
  function startPolling() {
    if (!polling) polling = setInterval(poll, 10000);
  }

  if (window.EventSource) {
    var es = new EventSource('api/events');
    var failures = 0;
    es.addEventListener('plots', function (e) {
      failures = 0;
      if (polling) { clearInterval(polling); polling = null; }
      JSON.parse(e.data).forEach(function (p) {
        var old = plots[p.name];
        if (!old || old.v !== p.v || p.removed || old.data_time !== p.data_time) apply(p);
      });
    });
    es.addEventListener('resync', poll);
    es.onerror = function () {
      // EventSource reconnects by itself; poll meanwhile so that a proxy
      // that breaks streaming still gets fresh plots.
      failures++;
      if (failures > 2) startPolling();
    };
  } else {
    startPolling();
  }
  window.km3monPlots = { plots: plots, apply: apply };
})();
