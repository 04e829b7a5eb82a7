// checkit's progressive enhancement. Every page works without it; with it:
// filter selects submit on change, day bars are explorable by keyboard and
// pointer, and status pages refresh their data in place.
"use strict";

(function () {
  // Filter forms: a changed select applies at once.
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () {
      select.form.requestSubmit();
    });
  });

  // Day bars: each day is a rect with a data-tip; the bar is one tab stop,
  // the arrow keys move between days and the tip is read out politely.
  function wireDaybar(svg) {
    var days = Array.prototype.slice.call(svg.querySelectorAll("rect[data-tip]"));
    var tip = document.getElementById(svg.getAttribute("aria-describedby"));
    if (!days.length || !tip) {
      return;
    }
    var current = days.length - 1;
    function show(index) {
      days.forEach(function (day) { day.classList.remove("sel"); });
      current = Math.max(0, Math.min(days.length - 1, index));
      days[current].classList.add("sel");
      tip.textContent = days[current].getAttribute("data-tip");
    }
    svg.addEventListener("focus", function () { show(current); });
    svg.addEventListener("blur", function () {
      days[current].classList.remove("sel");
    });
    svg.addEventListener("keydown", function (event) {
      var moves = { ArrowLeft: -1, ArrowRight: 1, Home: -days.length, End: days.length };
      if (event.key in moves) {
        event.preventDefault();
        show(current + moves[event.key]);
      }
    });
    days.forEach(function (day, index) {
      day.addEventListener("mouseenter", function () { show(index); });
    });
  }
  document.querySelectorAll("svg.daybar").forEach(wireDaybar);

  // In-place refresh: regions marked data-refresh="seconds" are replaced by
  // the same region of a fresh copy of the page, unless the visitor is
  // working inside them or the tab is hidden.
  document.querySelectorAll("[data-refresh][id]").forEach(function (region) {
    var seconds = Math.max(10, parseInt(region.getAttribute("data-refresh"), 10) || 60);
    window.setInterval(function () {
      if (document.hidden || region.contains(document.activeElement)) {
        return;
      }
      fetch(window.location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) {
            return;
          }
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
          if (fresh) {
            region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes));
            region.querySelectorAll("svg.daybar").forEach(wireDaybar);
            var stamp = document.getElementById("refreshed");
            if (stamp) {
              stamp.textContent = new Date().toISOString().slice(11, 19) + " UTC";
            }
          }
        })
        .catch(function () { /* Offline for a moment: the next round retries. */ });
    }, seconds * 1000);
  });
})();
