// The referrer's form: sent without leaving the page (the answer replaces the form's
// part: the reasons beside their fields, or the outcome, which then follows the live
// stream), and the commune found by name or postcode as one types. Without script the
// form posts as any form and the page comes back whole, with the same content.
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }

  // -- the outcome and the form's answer -------------------------------------------------

  function watch(container) {
    var part = container.querySelector("[data-part]");
    if (part && window.aiguillageLive) { window.aiguillageLive.watch(part); }
  }

  function send(form) {
    var container = byId("adresser");
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.textContent = "Envoi…"; }
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-Fragment": "1", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)).toString()
    })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        container.innerHTML = html;
        bind(container);
        var summary = byId("resume-erreurs");
        var outcome = byId("issue-titre");
        // Focus where the person has to look: the summary of what to fix, or the outcome.
        if (summary) { summary.focus(); }
        else if (outcome) { outcome.setAttribute("tabindex", "-1"); outcome.focus(); }
        watch(container);
      })
      .catch(function () {
        if (button) { button.disabled = false; button.textContent = "Envoyer la demande"; }
      });
  }

  // -- the commune, as one types -------------------------------------------------------

  function communes(input) {
    var list = byId("communes-liste");
    var insee = byId("champ-patient-commune-insee");
    var postcode = byId("champ-patient-postcode");
    var status = byId("communes-etat");
    var found = [];
    var active = -1;
    var timer = null;
    var asked = 0;

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var items = list.querySelectorAll("[role=option]");
      Array.prototype.forEach.call(items, function (li, i) {
        li.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      active = index;
      if (index >= 0 && items[index]) {
        input.setAttribute("aria-activedescendant", items[index].id);
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function choose(index) {
      var c = found[index];
      if (!c) { return; }
      input.value = c.name;
      insee.value = c.insee;
      if (postcode && c.postcodes.length) { postcode.value = c.postcodes[0]; }
      status.textContent = "Commune choisie : " + c.label + ".";
      close();
    }

    function show(items) {
      found = items;
      list.innerHTML = "";
      items.forEach(function (c, i) {
        var li = document.createElement("li");
        li.id = "commune-option-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.textContent = c.label;
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      if (items.length) {
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
        status.textContent = items.length + " commune(s) proposée(s) : flèches pour choisir, Entrée pour valider.";
      } else {
        close();
        status.textContent = input.value.trim().length >= 2 ? "Aucune commune ne correspond." : "";
      }
    }

    function lookUp() {
      var q = input.value.trim().slice(0, 50);
      var mine = ++asked;
      if (q.length < 2) { show([]); return; }
      fetch("/communes?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { communes: [] }; })
        .then(function (data) { if (mine === asked) { show(data.communes || []); } })
        .catch(function () { /* typing again tries again */ });
    }

    input.addEventListener("input", function () {
      // What was typed no longer names the chosen commune.
      insee.value = "";
      clearTimeout(timer);
      timer = setTimeout(lookUp, 150);
    });
    input.addEventListener("keydown", function (e) {
      if (list.hidden) { return; }
      if (e.key === "ArrowDown") { e.preventDefault(); highlight(Math.min(active + 1, found.length - 1)); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(Math.max(active - 1, 0)); }
      else if (e.key === "Enter" && active >= 0) { e.preventDefault(); choose(active); }
      else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 100); });
  }

  function bind(root) {
    var form = root.querySelector("#form-adresser");
    if (form) {
      form.addEventListener("submit", function (e) { e.preventDefault(); send(form); });
    }
    var commune = root.querySelector("#champ-patient-commune-name");
    if (commune) { communes(commune); }
  }

  bind(document);
  var printing = document.querySelector("[data-imprimer]");
  if (printing) { printing.addEventListener("click", function () { window.print(); }); }
})();
