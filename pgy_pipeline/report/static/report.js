// The follower report's page script: decodes the embedded data and draws with uPlot on demand.
// Curves are drawn when their box scrolls into view; a KOL's panel when its #kol-<id> fragment is opened.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("pgy-data").textContent);
  var DAY = 86400;
  var t0 = Date.parse(D.start + "T00:00:00Z") / 1000;
  var xs = [];
  for (var i = 0; i < D.days; i++) xs.push(t0 + i * DAY);
  var byId = {};
  D.ids.forEach(function (id, i) { byId[id] = i; });

  function dateOf(i) { return new Date((t0 + i * DAY) * 1000).toISOString().slice(0, 10); }
  function fmt(n) { return n === null || n === undefined ? "–" : n.toLocaleString("en-US"); }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; });
  }

  function series(k) {  // [total, new], null where nothing is stored (see payload.py for the encoding)
    var nw = D["new"][k].length ? D["new"][k] : xs.map(function () { return null; });
    var enc = D.tot[k], tot = [], prev = null;
    for (var i = 0; i < D.days; i++) {
      var e = enc.length ? enc[i] : null;
      if (e === null) { tot.push(null); continue; }
      prev = prev === null ? e : prev + (nw[i] || 0) + e;
      tot.push(prev);
    }
    return [tot, nw];
  }

  function marks(k) {
    var out = [];
    (D.anom[k] || []).forEach(function (a) { out.push({ i: a[0], colour: "#d62728", text: a[1] }); });
    (D.rev[k] || []).forEach(function (r) { out.push({ i: r[0], colour: "#ff9f1a", text: "restated" }); });
    return out;
  }

  function markPlugin(list) {
    return { hooks: { draw: function (u) {
      var ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
      ctx.save();
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.font = 10 * devicePixelRatio + "px sans-serif";
      list.forEach(function (m, n) {
        var x = Math.round(u.valToPos(xs[m.i], "x", true));
        ctx.strokeStyle = ctx.fillStyle = m.colour;
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
        var w = ctx.measureText(m.text).width, pad = 3 * devicePixelRatio;
        var tx = x + pad + w > u.bbox.left + u.bbox.width ? x - pad - w : x + pad;  // inside the plot
        ctx.fillText(m.text, tx, top + (12 + 12 * (n % 3)) * devicePixelRatio);  // staggered: marks may be close
      });
      ctx.restore();
    } } };
  }

  function chart(el, k, small) {
    var s = series(k);
    var width = Math.max(160, el.clientWidth || 600);
    var opts = small ? {
      width: 140, height: 32, legend: { show: false }, cursor: { show: false },
      axes: [{ show: false }, { show: false }], scales: { x: { time: true } },
      series: [{}, { stroke: "#1f77b4", width: 1.5, spanGaps: true }]
    } : {
      width: width, height: 220,
      scales: { x: { time: true }, fans: {}, daily: {} },
      axes: [{}, { scale: "fans", size: 70 }, { scale: "daily", side: 1, grid: { show: false }, size: 60 }],
      series: [{},
        { label: "total fans", scale: "fans", stroke: "#1f77b4", width: 2, spanGaps: false },
        { label: "new fans", scale: "daily", fill: "rgba(44,160,44,0.45)", stroke: "#2ca02c",
          paths: uPlot.paths.bars({ size: [0.7, 40] }), points: { show: false } }],
      plugins: [markPlugin(marks(k))]
    };
    var data = small ? [xs, s[0]] : [xs, s[0], s[1]];
    el.innerHTML = "";
    new uPlot(opts, data, el);
  }

  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (!e.isIntersecting) return;
      observer.unobserve(e.target);
      chart(e.target, +e.target.dataset.kol, e.target.classList.contains("spark"));
    });
  }, { rootMargin: "200px" });
  document.querySelectorAll(".chart[data-kol], .spark[data-kol]").forEach(function (el) { observer.observe(el); });

  // --- coverage grid: one row per KOL, most unsettled first, a page at a time, filtered by id ---
  var PAGE = 100, ROW = 12, CELL = 10, LABEL = 210;
  var order = D.ids.map(function (_, i) { return i; });
  function unsettled(k) { return D.cov[k].replace(/[sn]/g, "").length; }
  var weight = order.map(unsettled);
  order.sort(function (a, b) { return weight[b] - weight[a] || (D.ids[a] < D.ids[b] ? -1 : 1); });
  var shown = order, page = 0;
  var grid = document.getElementById("grid"), controls = document.getElementById("grid-controls");

  function drawGrid() {
    var rows = shown.slice(page * PAGE, (page + 1) * PAGE), r = devicePixelRatio;
    grid.width = (LABEL + CELL * D.days) * r;
    grid.height = (rows.length * ROW + 16) * r;
    grid.style.width = LABEL + CELL * D.days + "px";
    grid.style.height = rows.length * ROW + 16 + "px";
    var ctx = grid.getContext("2d");
    ctx.scale(r, r);
    ctx.font = "10px monospace";
    ctx.fillStyle = "#333";
    for (var d = 0; d < D.days; d += 7) ctx.fillText(dateOf(d).slice(5), LABEL + d * CELL, 10);
    rows.forEach(function (k, y) {
      var top = 16 + y * ROW, cov = D.cov[k];
      ctx.fillStyle = "#333";
      ctx.fillText(D.ids[k], 2, top + 9);
      for (var d = 0; d < cov.length; d++) {
        ctx.fillStyle = D.states[cov[d]][1];
        ctx.fillRect(LABEL + d * CELL, top, CELL - 1, ROW - 1);
      }
    });
    var pages = Math.max(1, Math.ceil(shown.length / PAGE));
    controls.innerHTML = '<button data-step="-1">‹ previous</button> page ' + (page + 1) + " of " + pages +
      " (" + shown.length.toLocaleString("en-US") + ' KOLs, most unsettled first) <button data-step="1">next ›</button>';
    grid.dataset.rows = rows.join(",");
  }
  controls.addEventListener("click", function (e) {
    var step = +(e.target.dataset.step || 0), pages = Math.ceil(shown.length / PAGE);
    if (step && page + step >= 0 && page + step < pages) { page += step; drawGrid(); }
  });
  grid.addEventListener("click", function (e) {
    var y = Math.floor((e.offsetY - 16) / ROW), rows = grid.dataset.rows.split(",");
    if (y >= 0 && y < rows.length && rows[y] !== "") location.hash = "kol-" + D.ids[+rows[y]];
  });

  // --- filter by id: narrows the grid and lists the first matches as links ---
  var filter = document.getElementById("filter"), matches = document.getElementById("matches");
  filter.addEventListener("input", function () {
    var q = filter.value.trim().toLowerCase();
    shown = q ? order.filter(function (k) { return D.ids[k].toLowerCase().indexOf(q) >= 0; }) : order;
    page = 0;
    drawGrid();
    matches.innerHTML = q ? shown.slice(0, 10).map(function (k) {
      return '<a href="#kol-' + D.ids[k] + '">' + D.ids[k] + "</a>";
    }).join(" ") + (shown.length > 10 ? " …" : "") + (shown.length ? "" : "no KOL matches") : "";
  });
  filter.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && byId[filter.value.trim()] !== undefined) location.hash = "kol-" + filter.value.trim();
  });

  // --- one KOL: #kol-<id> opens its panel ---
  var panel = document.getElementById("kol");
  function openKol() {
    var m = /^#kol-(.+)$/.exec(decodeURIComponent(location.hash));
    if (!m) { panel.hidden = true; return; }
    var k = byId[m[1]];
    panel.hidden = false;
    if (k === undefined) { panel.innerHTML = "<h2>KOL " + esc(m[1]) + "</h2><p>Not in this report.</p>"; return; }
    var s = series(k), label = D.labels[k] ? " · " + esc(D.labels[k]) : "";
    var items = (D.anom[k] || []).map(function (a) { return "<li>" + dateOf(a[0]) + " <b>" + esc(a[1]) + "</b>: " + esc(a[2]) + "</li>"; })
      .concat((D.rev[k] || []).map(function (r) {
        return "<li>" + dateOf(r[0]) + " " + r[1] + " restated " + fmt(r[2]) + " → " + fmt(r[3]) + "</li>";
      }));
    var last = s[0].filter(function (v) { return v !== null; }).pop();
    panel.innerHTML = "<h2>KOL " + esc(D.ids[k]) + label + '</h2><p>total fans on the last stored date: ' + fmt(last) +
      ' · <a href="#">close</a></p><div class="chart-big"></div><canvas class="row"></canvas><ul>' + items.join("") + "</ul>";
    chart(panel.querySelector(".chart-big"), k, false);
    var row = panel.querySelector("canvas.row"), ctx = row.getContext("2d");
    row.width = CELL * D.days; row.height = ROW;
    for (var d = 0; d < D.days; d++) { ctx.fillStyle = D.states[D.cov[k][d]][1]; ctx.fillRect(d * CELL, 0, CELL - 1, ROW); }
    panel.scrollIntoView();
  }
  window.addEventListener("hashchange", openKol);

  // --- fetch health: billed calls per day, and the budget when one is set ---
  var hc = document.getElementById("health-chart");
  if (D.health.length) {
    var hx = D.health.map(function (h) { return Date.parse(h[0] + "T00:00:00Z") / 1000; });
    var hs = [{}, { label: "billed calls", fill: "rgba(31,119,180,0.4)", stroke: "#1f77b4",
      paths: uPlot.paths.bars({ size: [0.6, 40] }), points: { show: false } }];
    var hd = [hx, D.health.map(function (h) { return h[1]; })];
    if (D.budget !== null) {
      hs.push({ label: "daily budget", stroke: "#d62728", dash: [6, 4], points: { show: false } });
      hd.push(hx.map(function () { return D.budget; }));
    }
    new uPlot({ width: Math.max(300, hc.clientWidth || 600), height: 180, scales: { x: { time: true } }, series: hs }, hd, hc);
  }

  drawGrid();
  openKol();
})();
