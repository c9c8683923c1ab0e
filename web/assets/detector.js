// Detector page: the server pushes the table and its rendering on every
// change (api/detector/events); the page swaps it in without a reload.
(function () {
  'use strict';
  var root = document.getElementById('detector-root');
  if (!root || !window.EventSource) return;
  var es = new EventSource('api/detector/events');
  es.addEventListener('detector', function (ev) {
    var d = JSON.parse(ev.data);
    root.innerHTML = d.html;
    root.setAttribute('data-updated', String(Date.now()));
  });
  es.addEventListener('resync', function () { es.close(); location.reload(); });
})();
