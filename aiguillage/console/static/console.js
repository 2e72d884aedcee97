// Live updates: the server says which parts of the page an event touches; each part
// is fetched again as an HTML fragment. A second fetch a little later catches what
// the services commit just after the event that announced it.
(function () {
  "use strict";
  var timers = {};
  var direct = document.getElementById("direct");
  var journal = document.getElementById("journal");

  function sections(part) {
    return Array.prototype.filter.call(
      document.querySelectorAll("[data-part]"),
      function (el) { return el.getAttribute("data-part").split(" ").indexOf(part) >= 0; }
    );
  }

  function refresh(el) {
    // Never pull a form from under someone typing in it: try again shortly.
    if (el.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
      schedule(el, 3000);
      return;
    }
    fetch(el.getAttribute("data-src"), { credentials: "same-origin", headers: { "X-Fragment": "1" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        el.innerHTML = html;
        el.setAttribute("data-refreshed", String(Date.now()));
        // A referral still on its way (regulation, a slot being looked for) is read
        // again shortly, events or not: its status is intake's, committed after them.
        if (el.querySelector("[data-pending]")) { schedule(el, 1500); }
        atNextChange(el);
      })
      .catch(function () { /* the next event tries again */ });
  }

  function schedule(el, delay) {
    var key = el.id + ":" + delay;
    if (timers[key]) { return; }
    timers[key] = setTimeout(function () { delete timers[key]; refresh(el); }, delay);
  }

  // What a centre may record changes with time (a slot starts, ends; a correction's 24
  // hours run out): the server says in how many seconds, the part is read again then.
  function atNextChange(el) {
    var marked = el.querySelector("[data-prochain]");
    if (!marked) { return; }
    schedule(el, 1000 * parseInt(marked.getAttribute("data-prochain"), 10));
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-part]"), atNextChange);

  function note(line) {
    if (!journal || !line) { return; }
    var li = document.createElement("li");
    // Paris time, as every time on the page, whatever the browser's own zone.
    li.textContent = new Date().toLocaleTimeString("fr-FR", { timeZone: "Europe/Paris" }) + " — " + line;
    journal.insertBefore(li, journal.firstChild);
    while (journal.children.length > 30) { journal.removeChild(journal.lastChild); }
  }

  // The referrer's form puts in an outcome part after the page loaded: it asks here.
  window.aiguillageLive = { watch: function (el) { schedule(el, 300); schedule(el, 1500); } };

  if (!window.EventSource) { return; }
  var source = null;

  function connect() {
    source = new EventSource("/evenements");
    source.onopen = function () {
      if (direct) { direct.textContent = "● en direct"; direct.className = "direct en-ligne"; }
      // What happened between the page's rendering and this (re)connection was not
      // streamed to it: fetch every part once.
      Array.prototype.forEach.call(document.querySelectorAll("[data-part]"), function (el) {
        schedule(el, 300); schedule(el, 2000);
      });
    };
    source.onerror = function () {
      if (direct) { direct.textContent = "● reconnexion…"; direct.className = "direct"; }
    };
    // The session ended (idle, log-out, account disabled): no reconnecting, say it.
    source.addEventListener("expired", function () {
      source.close();
      source = null;
      if (direct) { direct.textContent = "● session expirée : rechargez la page pour vous reconnecter"; direct.className = "direct"; }
    });
    source.addEventListener("change", function (message) {
      var change = JSON.parse(message.data);
      note(change.line);
      change.parts.forEach(function (part) {
        sections(part).forEach(function (el) { schedule(el, 300); schedule(el, 2000); });
      });
    });
  }

  // A page left for another may be kept alive by the browser (back-forward cache):
  // its stream is closed with it, or streams pile up past the browser's six
  // connections per server and the next page never loads. Reopened if it comes back.
  window.addEventListener("pagehide", function () { if (source) { source.close(); source = null; } });
  window.addEventListener("pageshow", function (e) { if (e.persisted && !source) { connect(); } });
  connect();
})();
