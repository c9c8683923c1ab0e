// Live log (replaces frontail): the last 200 lines at connection, then
// every new line of MSG.log, with frontail's highlighting preset.
(function () {
  'use strict';
  var MAX_LINES = 10000;
  var box = document.getElementById('livelog');
  var state = document.getElementById('live-state');
  var follow = document.getElementById('follow');
  var filter = document.getElementById('filter');
  // frontail.json: words and their styles; ERROR also makes the line bold.
  var RULES = [
    ['[AcousticDataFilter]', 'hl-acoustic'],
    ['[DataFilter]', 'hl-datafilter'],
    ['[DataWriter]', 'hl-datawriter'],
    ['[DataQueue]', 'hl-dataqueue'],
    ['ALERT', 'hl-alert'],
    ['ERROR', 'hl-error'],
    ['STATUS', 'hl-status']
  ];
  function esc(s) {
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  }
  function reEsc(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }
  var rx = new RegExp(RULES.map(function (r) {
    var w = reEsc(r[0]);
    // Plain words match as words; bracketed tags as they are.
    return r[0].charAt(0) === '[' ? w : '\\b' + w + '\\b';
  }).join('|'), 'g');
  function highlight(line) {
    var out = '', last = 0, m;
    rx.lastIndex = 0;
    while ((m = rx.exec(line)) !== null) {
      var cls = '';
      for (var i = 0; i < RULES.length; i++) if (RULES[i][0] === m[0]) cls = RULES[i][1];
      out += esc(line.slice(last, m.index)) + '<span class="' + cls + '">' + esc(m[0]) + '</span>';
      last = m.index + m[0].length;
    }
    return out + esc(line.slice(last));
  }
  function matches(text) {
    var f = filter.value;
    return !f || text.toLowerCase().indexOf(f.toLowerCase()) >= 0;
  }
  function add(lines, sys) {
    var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    var frag = document.createDocumentFragment();
    lines.forEach(function (l) {
      var d = document.createElement('div');
      d.className = 'line' + (sys ? ' sys' : '') + (/\bERROR\b/.test(l) ? ' bold' : '');
      if (sys) d.textContent = l; else d.innerHTML = highlight(l);
      d.setAttribute('data-text', l);
      if (!matches(l)) d.style.display = 'none';
      frag.appendChild(d);
    });
    box.appendChild(frag);
    while (box.childNodes.length > MAX_LINES) box.removeChild(box.firstChild);
    if (follow.checked && atBottom) window.scrollTo(0, document.body.scrollHeight);
  }
  filter.addEventListener('input', function () {
    var all = box.childNodes;
    for (var i = 0; i < all.length; i++) all[i].style.display = matches(all[i].getAttribute('data-text') || '') ? '' : 'none';
  });
  var es = new EventSource('api/livelog');
  es.addEventListener('init', function (e) {
    // A reconnect sends the backlog again: start over rather than repeat.
    box.innerHTML = '';
    add(JSON.parse(e.data), false);
    state.textContent = 'live';
    window.scrollTo(0, document.body.scrollHeight);
  });
  es.addEventListener('lines', function (e) { add(JSON.parse(e.data), false); });
  es.addEventListener('rotated', function () { add(['— MSG.log rotated —'], true); });
  es.addEventListener('lagged', function (e) { add(['— ' + e.data + ' batches skipped (browser too slow) —'], true); });
  es.onerror = function () { state.textContent = 'reconnecting…'; };
})();
