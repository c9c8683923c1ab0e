// Every page: the UTC clock of the original's navigation bar.
(function () {
  'use strict';
  function tick() {
    var el = document.getElementById('utc-clock');
    if (el) el.textContent = new Date().toUTCString().replace('GMT', 'UTC');
  }
  tick();
  setInterval(tick, 1000);
})();
