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

  // Day bars: one tab stop each; the arrow keys move between days and the
  // pointer picks the day under it. The words of a bar's days are fetched
  // once, on first use, from the page's days URL (a status page has hundreds
  // of bars, so they are not in the HTML), and shown in the one shared tip.
  var daysUrl = (document.getElementById("days") || { dataset: {} }).dataset.url;
  function wireDaybar(svg) {
    var row = svg.closest("[data-check]");
    var count = svg.viewBox.baseVal.width;
    if (!daysUrl || !row || !count) {
      return;
    }
    var current = count - 1;
    var words = null;
    var loaded = null;
    var marker = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    marker.setAttribute("class", "sel");
    marker.setAttribute("width", "1");
    marker.setAttribute("height", "1");
    function load() {
      if (!words) {
        words = fetch(daysUrl + encodeURIComponent(row.dataset.check), { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : { days: [] }; })
          .then(function (body) { return body.days || []; })
          .catch(function () { words = null; return []; });
      }
      return words;
    }
    function show(index) {
      current = Math.max(0, Math.min(count - 1, index));
      marker.setAttribute("x", String(current));
      svg.appendChild(marker);
      var tip = document.getElementById("daytip");
      if (!tip) {
        return;
      }
      svg.after(tip);
      tip.hidden = false;
      // The tip hangs from the day, towards the middle of the bar.
      var x = svg.clientWidth * (current + 0.5) / count;
      var left = x <= svg.clientWidth / 2;
      tip.style.left = left ? x + "px" : "";
      tip.style.right = left ? "" : (svg.clientWidth - x) + "px";
      tip.style.top = (svg.offsetTop + svg.clientHeight + 4) + "px";
      tip.textContent = loaded && loaded[current] ? loaded[current] : "…";
      var shown = current;
      load().then(function (days) {
        loaded = days;
        if (shown === current && days[shown]) {
          tip.textContent = days[shown];
        }
      });
    }
    function hide() {
      marker.remove();
      var tip = document.getElementById("daytip");
      if (tip && tip.previousElementSibling === svg) {
        tip.hidden = true;
      }
    }
    svg.addEventListener("focus", function () { show(current); });
    svg.addEventListener("blur", hide);
    svg.addEventListener("mouseleave", function () {
      if (document.activeElement !== svg) {
        hide();
      }
    });
    svg.addEventListener("keydown", function (event) {
      var moves = { ArrowLeft: -1, ArrowRight: 1, Home: -count, End: count };
      if (event.key in moves) {
        event.preventDefault();
        show(current + moves[event.key]);
      }
    });
    svg.addEventListener("mousemove", function (event) {
      var box = svg.getBoundingClientRect();
      var index = Math.floor((event.clientX - box.left) / box.width * count);
      if (index !== current || marker.parentNode !== svg) {
        show(index);
      }
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
