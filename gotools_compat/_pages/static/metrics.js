/* The metrics page: every family of metrics.json drawn as a card, grouped
   by sender (job, instance), updated in place at each poll. */
"use strict";

(function () {
  var MAX_CARDS = 500, MAX_SERIES = 12, HISTORY = 60;
  var groupsNode = document.getElementById("groups");
  var filterNode = document.getElementById("filter");
  var last = null;              // the latest answer
  var polls = 0;
  var cards = new Map();        // card key -> {node, sig}
  var sections = new Map();     // sender key -> {node, grid}
  var past = new Map();         // series key -> [[unix seconds, value], ...]

  // -- the model --------------------------------------------------------------

  function senderKey(labels) { return (labels.job || "") + "\u0000" + (labels.instance || ""); }

  /* [{key, job, instance, families: [{family, series}]}], senders with a job
     first, the server's own metrics (no job, no instance) last. */
  function groups(doc) {
    var byKey = new Map();
    doc.families.forEach(function (family) {
      var bySender = new Map();
      family.series.forEach(function (s) {
        var key = senderKey(s.labels);
        if (!bySender.has(key)) bySender.set(key, []);
        bySender.get(key).push(s);
      });
      bySender.forEach(function (series, key) {
        if (!byKey.has(key)) {
          byKey.set(key, {key: key, job: series[0].labels.job || "",
                          instance: series[0].labels.instance || "", families: []});
        }
        byKey.get(key).families.push({family: family, series: series});
      });
    });
    return Array.from(byKey.values()).sort(function (a, b) {
      if (!a.job !== !b.job) return a.job ? -1 : 1;
      return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    });
  }

  function pairs(labels) {
    return Object.keys(labels).filter(function (k) { return k !== "job" && k !== "instance"; })
      .map(function (k) { return k + "=" + labels[k]; });
  }

  function terms() {
    return filterNode.value.toLowerCase().replace(/"/g, "").split(/\s+/).filter(Boolean);
  }

  /* Every term is part of the family's name or of one of the series' labels. */
  function matches(family, s, ts) {
    if (!ts.length) return true;
    var name = family.name.toLowerCase();
    var texts = Object.keys(s.labels).map(function (k) {
      return (k + "=" + s.labels[k]).toLowerCase();
    });
    return ts.every(function (t) {
      return name.indexOf(t) >= 0 || texts.some(function (x) { return x.indexOf(t) >= 0; });
    });
  }

  function remember(doc) {
    var seen = new Set();
    doc.families.forEach(function (f) {
      if (f.type !== "counter" && f.type !== "gauge") return;
      f.series.forEach(function (s) {
        var key = f.name + "\u0000" + JSON.stringify(s.labels);
        var h = past.get(key) || [];
        if (!h.length || h[h.length - 1][0] !== doc.now) h.push([doc.now, P.num(s.value)]);
        if (h.length > HISTORY) h.shift();
        past.set(key, h);
        seen.add(key);
      });
    });
    past.forEach(function (_, key) { if (!seen.has(key)) past.delete(key); });
  }

  // -- drawing ---------------------------------------------------------------

  function leText(le) { return le === "+Inf" ? "+Inf" : le.replace(/\.0$/, ""); }

  function bucketRange(le, i) {
    return i ? "(" + leText(le[i - 1]) + ", " + leText(le[i]) + "]" : "\u2264 " + leText(le[i]);
  }

  /* Prometheus's histogram_quantile: linear within the bucket that holds the rank. */
  function quantile(q, le, counts, total) {
    if (!total || le.length < 2) return null;
    var rank = q * total, cum = 0;
    for (var i = 0; i < counts.length; i++) {
      var before = cum;
      cum += counts[i];
      if (cum < rank || !counts[i]) continue;
      if (i === counts.length - 1) return {value: parseFloat(le[i - 1]), above: true};
      var upper = parseFloat(le[i]);
      var lower = i ? parseFloat(le[i - 1]) : Math.min(0, upper);
      if (i === 0 && upper <= 0) return {value: upper};
      return {value: lower + (upper - lower) * (rank - before) / counts[i]};
    }
    return null;
  }

  /* Bars in an SVG stretched to the card's width (no text in it, so nothing
     is distorted), the bounds beneath as text. */
  function chart(s) {
    var counts = s.buckets, le = s.le, n = counts.length, H = 90;
    var max = Math.max.apply(null, counts) || 1;
    var bars = P.svg("svg", {class: "bars", viewBox: "0 0 " + n * 10 + " " + H,
                             preserveAspectRatio: "none", role: "img",
                             "aria-label": "count per bucket"});
    counts.forEach(function (c, i) {
      var h = c ? Math.max(1, Math.round(c / max * (H - 4))) : 0;
      bars.appendChild(P.svg("rect", {class: i === n - 1 ? "bar inf" : "bar", x: i * 10 + 1,
        y: H - h, width: 8, height: h, "data-i": i, "data-le": le[i], "data-count": c}));
    });
    // One tooltip per chart, written when the pointer reaches a bar.
    var tip = bars.appendChild(P.svg("title", {text: "count per bucket"}));
    bars.addEventListener("mouseover", function (e) {
      var i = e.target.getAttribute("data-i");
      if (i !== null) tip.textContent = bucketRange(le, +i) + ": " + counts[+i];
    });
    var longest = Math.max.apply(null, le.map(function (x) { return leText(x).length; }));
    var step = Math.max(1, Math.ceil(longest * 6.5 * n / 300));  // fits a 300 px chart
    var ticks = P.el("div", {class: "ticks"}, le.map(function (x, i) {
      return P.el("span", {text: (n - 1 - i) % step === 0 ? leText(x) : ""});
    }));
    return P.el("div", {class: "chart"}, [bars, ticks]);
  }

  function stats(rows) {
    var dl = P.el("dl", {class: "stats"});
    rows.forEach(function (r) {
      dl.appendChild(P.el("div", null, [P.el("dt", {text: r[0]}),
        P.el("dd", {"data-stat": r[0], "data-value": r[2], text: r[1]})]));
    });
    return dl;
  }

  function histogramStats(s) {
    var total = s.count, sum = P.num(s.sum);
    var rows = [["count", P.fmt(total), total], ["sum", P.fmt(sum), sum],
                ["mean", total ? P.fmt(sum / total) : "\u2013", total ? sum / total : ""]];
    [0.5, 0.9, 0.99].forEach(function (q) {
      var est = quantile(q, s.le, s.buckets, total);
      var text = est === null ? "\u2013" : (est.above ? "> " : "") + P.fmt(est.value);
      rows.push(["p" + Math.round(q * 100), text, est === null ? "" : est.value]);
    });
    return stats(rows);
  }

  function spark(values) {
    var node = P.svg("svg", {class: "spark", viewBox: "0 0 120 28", "data-values":
      values.map(function (v) { return v === null ? "" : v; }).join(",")});
    var finite = values.filter(function (v) { return v !== null && isFinite(v); });
    if (finite.length < 2) return node;
    var lo = Math.min.apply(null, finite), hi = Math.max.apply(null, finite);
    var points = [];
    values.forEach(function (v, i) {
      if (v === null || !isFinite(v)) return;
      var x = values.length > 1 ? i * 120 / (values.length - 1) : 0;
      var y = hi > lo ? 25 - (v - lo) / (hi - lo) * 22 : 14;
      points.push(x.toFixed(1) + "," + y.toFixed(1));
    });
    node.appendChild(P.svg("polyline", {points: points.join(" ")}));
    return node;
  }

  function scalar(family, s) {
    var h = past.get(family.name + "\u0000" + JSON.stringify(s.labels)) || [];
    var value = P.el("div", {class: "value", "data-value": s.value, text: P.fmt(s.value)});
    if (family.type !== "counter") {
      return [value, spark(h.map(function (p) { return p[1]; }))];
    }
    var rates = [];
    for (var i = 1; i < h.length; i++) {
      var dt = h[i][0] - h[i - 1][0], dv = h[i][1] - h[i - 1][1];
      rates.push(dt > 0 && dv >= 0 ? dv / dt : null);  // a reset: no rate
    }
    var latest = rates.length ? rates[rates.length - 1] : null;
    var rate = P.el("div", {class: "rate", "data-rate": latest === null ? "" : latest,
      text: latest === null ? "rate: from the next update" : P.fmt(latest) + " /s"});
    return [value, rate, spark(rates)];
  }

  function summaryStats(s) {
    var rows = [["count", P.fmt(s.count), s.count], ["sum", P.fmt(s.sum), P.num(s.sum)]];
    s.quantiles.forEach(function (q) {
      rows.push(["q" + q[0], P.fmt(q[1]), P.num(q[1])]);
    });
    return stats(rows);
  }

  function seriesNode(family, s) {
    var labels = pairs(s.labels);
    var t = family.type, drawn = t === "histogram" || t === "gaugehistogram";
    var node = P.el("div", {class: drawn || t === "summary" ? "series" : "series scalar",
                            "data-labels": JSON.stringify(s.labels)},
      [labels.length ? P.el("ul", {class: "labels"}, labels.map(function (t) {
        return P.el("li", {text: t});
      })) : null]);
    if (drawn) {
      node.appendChild(chart(s));
      node.appendChild(histogramStats(s));
    } else if (t === "summary") {
      node.appendChild(summaryStats(s));
    } else {
      scalar(family, s).forEach(function (child) { node.appendChild(child); });
    }
    return node;
  }

  function card(key, family, series) {
    var moving = family.type === "counter" || family.type === "gauge";
    var sig = JSON.stringify(series) + (moving ? "\u0000" + polls : "");
    var known = cards.get(key);
    if (known && known.sig === sig) return known.node;
    var node = P.el("article", {class: "card", "data-metric": family.name,
                                "data-type": family.type}, [
      P.el("h3", null, [P.el("span", {class: "name", text: family.name}),
        P.el("span", {class: "badge", text: family.type}),
        family.unit && family.unit !== "1" ? P.el("span", {class: "unit", text: family.unit})
          : null]),
      family.help ? P.el("p", {class: "help", text: family.help}) : null]);
    series.slice(0, MAX_SERIES).forEach(function (s) { node.appendChild(seriesNode(family, s)); });
    if (series.length > MAX_SERIES) {
      node.appendChild(P.el("p", {class: "note", text: "and " + (series.length - MAX_SERIES) +
        " more series: narrow the filter to see them"}));
    }
    cards.set(key, {node: node, sig: sig});
    return node;
  }

  function section(g, titled) {
    var known = sections.get(g.key);
    if (!known) {
      var grid = P.el("div", {class: "cards"});
      var head = g.job || g.instance
        ? [P.el("span", {class: "job", text: g.job || "(no job)"}),
           g.instance ? P.el("span", {class: "instance", text: g.instance}) : null]
        : [P.el("span", {class: "job", text: (last.source || "this server") + " itself"})];
      known = {grid: grid, node: P.el("section", {class: "sender", "data-job": g.job,
        "data-instance": g.instance}, [P.el("h2", null, head), grid])};
      sections.set(g.key, known);
    }
    known.node.firstChild.hidden = !titled;
    return known;
  }

  function render() {
    if (!last) return;
    var started = performance.now();
    var ts = terms(), all = groups(last), titled = all.length > 1 || (all[0] && all[0].job);
    var shown = 0, families = 0, kept = new Set(), out = [], usedSections = new Set();
    all.forEach(function (g) {
      var nodes = [];
      g.families.forEach(function (f) {
        families++;
        var series = f.series.filter(function (s) { return matches(f.family, s, ts); });
        if (!series.length || shown >= MAX_CARDS) return;
        shown++;
        var key = g.key + "\u0000" + f.family.name;
        kept.add(key);
        nodes.push(card(key, f.family, series));
      });
      if (!nodes.length) return;
      var sec = section(g, titled);
      sec.grid.replaceChildren.apply(sec.grid, nodes);
      usedSections.add(g.key);
      out.push(sec.node);
    });
    cards.forEach(function (_, key) { if (!kept.has(key)) cards.delete(key); });
    sections.forEach(function (_, key) { if (!usedSections.has(key)) sections.delete(key); });
    if (!out.length) {
      out.push(P.el("p", {class: "note", id: "empty", text: families
        ? "No metric matches \u201c" + filterNode.value + "\u201d."
        : "No metrics yet: they show here as soon as a sender exports."}));
    } else if (shown >= MAX_CARDS) {
      out.push(P.el("p", {class: "note", text: "Showing the first " + MAX_CARDS +
        " cards: narrow the filter to see the others."}));
    }
    groupsNode.replaceChildren.apply(groupsNode, out);
    document.body.setAttribute("data-cards", shown);
    document.body.setAttribute("data-render-ms", Math.round(performance.now() - started));
  }

  function showStatus() {
    if (!last) return;
    var now = Date.now() / 1000, series = 0;
    last.families.forEach(function (f) { series += f.series.length; });
    P.status(last.families.length + " families, " + series + " series \u00b7 data changed " +
      P.clock(last.changed) + " (" + P.ago(now - last.changed) + ") \u00b7 updated every " +
      P.interval(last) + " s", {"data-changed": last.changed, "data-now": last.now,
                                "data-polls": polls});
  }

  // -- wiring ----------------------------------------------------------------

  function fromHash() {
    var asked = P.hashParams().q || "";
    if (asked === filterNode.value) return false;
    filterNode.value = asked;
    return true;
  }
  fromHash();
  window.addEventListener("hashchange", function () { if (fromHash()) render(); });
  filterNode.addEventListener("input", function () {
    window.history.replaceState(null, "", P.hashOf({q: filterNode.value}));
    render();
  });

  P.poll(document.body.getAttribute("data-json"), function (doc) {
    last = doc;
    polls++;
    remember(doc);
    document.getElementById("source").textContent = doc.source;
    document.title = doc.source + " \u00b7 metrics";
    document.getElementById("tracez-link").hidden = !doc.tracez;
    render();
    showStatus();
    document.body.setAttribute("data-polls", polls);
  }, function (err) {
    P.status("cannot read the data (" + err.message + "): retrying" +
      (last ? "; showing the data of " + P.clock(last.now) : ""), {"data-error": err.message});
  });
  setInterval(showStatus, 1000);
})();
