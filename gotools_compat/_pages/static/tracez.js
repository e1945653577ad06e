/* The tracez page: span names with their latency buckets (polled); a bucket
   lists its spans, a span opens its trace as a waterfall.  The view is in
   the URL's hash (#name=..&latency=.., #trace=..), so it can be linked. */
"use strict";

(function () {
  var LABELS = ["0s", "10us", "100us", "1ms", "10ms", "100ms", "1s", "10s", "100s"];
  var namesNode = document.getElementById("names");
  var spansNode = document.getElementById("spans");
  var traceNode = document.getElementById("trace");
  var json = document.body.getAttribute("data-json");
  var last = null, polls = 0, shownHash = null;

  function link(params, text, attrs) {
    var a = P.el("a", attrs, [String(text)]);
    a.setAttribute("href", P.hashOf(params));
    return a;
  }

  function get(query) {
    return fetch(json + "?" + new URLSearchParams(query).toString(), {cache: "no-store"})
      .then(function (r) {
        if (!r.ok) return r.json().then(function (e) { throw new Error(e.error || r.status); });
        return r.json();
      });
  }

  // -- span names ------------------------------------------------------------

  function drawNames(doc) {
    var head = P.el("tr", null, [P.el("th", {text: "Span name"}), P.el("th", {text: "Count"}),
      P.el("th", {text: "Errors"})].concat(LABELS.map(function (l) {
        return P.el("th", {class: "n", text: "\u2265" + l.replace("us", "\u00b5s")});
      })));
    var rows = doc.spanNames.map(function (row) {
      var cells = [P.el("td", {class: "name", text: row.name}),
        P.el("td", {class: "n", "data-count": row.count, text: P.fmt(row.count)}),
        P.el("td", {class: row.errors ? "n err" : "n", "data-errors": row.errors}, [row.errors
          ? link({name: row.name, errors: "1"}, P.fmt(row.errors), {"data-name": row.name,
                                                                   "data-errors": "1"})
          : "0"])];
      LABELS.forEach(function (l) {
        var n = row.latency[l] || 0;
        cells.push(P.el("td", {class: "n", "data-latency": l, "data-count": n}, [n
          ? link({name: row.name, latency: l}, P.fmt(n), {"data-name": row.name,
                                                         "data-latency": l})
          : ""]));
      });
      return P.el("tr", {"data-span-name": row.name}, cells);
    });
    if (!rows.length) {
      rows.push(P.el("tr", null, [P.el("td", {colspan: 3 + LABELS.length, class: "note",
        text: "No spans yet: they show here as soon as a sender exports."})]));
    }
    namesNode.replaceChildren.apply(namesNode, [P.el("thead", null, [head]),
                                                 P.el("tbody", null, rows)]);
  }

  // -- spans of one bucket ----------------------------------------------------

  function spanRow(s) {
    var row = P.el("tr", {class: s.status.code ? "span err" : "span", tabindex: 0,
      "data-span-id": s.spanId, "data-parent-id": s.parentSpanId, "data-trace-id": s.traceId}, [
      P.el("td", {text: P.date(s.startUnixNano / 1e9)}),
      P.el("td", {class: "n", "data-duration": s.durationNano, text: P.duration(s.durationNano)}),
      P.el("td", {text: s.service}),
      P.el("td", {class: "id", text: s.traceId.slice(0, 16)}),
      P.el("td", {text: s.status.code ? "error " + s.status.code : "ok"})]);
    function open() {
      var params = P.hashParams();
      params.trace = s.traceId;
      params.span = s.spanId;
      location.hash = P.hashOf(params);
    }
    row.addEventListener("click", open);
    row.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
    return row;
  }

  function drawSpans(params, doc) {
    var what = params.errors ? "with an error status"
      : "that took \u2265 " + params.latency.replace("us", "\u00b5s") + " (and less than the next bucket)";
    var rows = doc.spans.map(spanRow);
    spansNode.replaceChildren(
      P.el("h2", null, ["Spans of ", P.el("code", {text: params.name}), " " + what]),
      P.el("p", {class: "note", text: doc.matched + " of the " + doc.kept + " spans kept match" +
        (doc.spans.length < doc.matched ? "; the newest " + doc.spans.length + " are listed" : "") +
        ". The counts above include spans no longer kept. Click a span to open its trace."}),
      P.el("table", {class: "grid spans"}, [P.el("thead", null, [P.el("tr", null, [
        P.el("th", {text: "Start"}), P.el("th", {text: "Duration"}), P.el("th", {text: "Service"}),
        P.el("th", {text: "Trace"}), P.el("th", {text: "Status"})])]), P.el("tbody", null, rows)]));
    spansNode.hidden = false;
  }

  // -- one trace as a waterfall ----------------------------------------------

  function tree(spans) {
    var byId = new Map(), children = new Map(), roots = [];
    spans.forEach(function (s) { byId.set(s.spanId, s); children.set(s.spanId, []); });
    spans.forEach(function (s) {
      if (s.parentSpanId && byId.has(s.parentSpanId)) children.get(s.parentSpanId).push(s);
      else roots.push(s);
    });
    var out = [];
    (function walk(list, depth) {
      list.forEach(function (s) {
        out.push({span: s, depth: depth, orphan: depth === 0 && !!s.parentSpanId});
        walk(children.get(s.spanId), depth + 1);
      });
    })(roots, 0);
    return out;
  }

  function details(s) {
    var attrs = Object.keys(s.attributes).sort();
    return P.el("div", {class: "detail"}, [
      P.el("div", {class: "status"}, ["status: ", P.el("span", {"data-status": s.status.code,
        text: s.status.code ? "error " + s.status.code : "ok"}),
        s.status.message ? " \u2014 " : null,
        s.status.message ? P.el("span", {text: s.status.message}) : null]),
      attrs.length ? P.el("dl", {class: "attrs"}, attrs.map(function (k) {
        return P.el("div", null, [P.el("dt", {text: k}), P.el("dd", {"data-attribute": k,
          text: String(s.attributes[k])})]);
      })) : null,
      s.annotations.length ? P.el("ol", {class: "annotations"}, s.annotations.map(function (a) {
        return P.el("li", null, [P.el("span", {class: "at", text: "+" +
          P.duration(Math.max(0, a.timeUnixNano - s.startUnixNano))}), " ",
          P.el("span", {text: a.value})]);
      })) : null]);
  }

  function drawTrace(params, doc) {
    var spans = doc.trace;
    if (!spans.length) {
      traceNode.replaceChildren(P.el("h2", {text: "Trace " + params.trace}),
        P.el("p", {class: "note", text: "None of its spans is kept any more."}));
      traceNode.hidden = false;
      return;
    }
    var t0 = spans[0].startUnixNano;  // the first: offsetNano 0
    var total = Math.max(1, Math.max.apply(null, spans.map(function (s) {
      return s.offsetNano + s.durationNano;
    })));
    var rows = tree(spans).map(function (item) {
      var s = item.span, x = s.offsetNano / total * 1000;
      var bar = P.svg("svg", {class: "waterfall", viewBox: "0 0 1000 10",
                              preserveAspectRatio: "none"}, [
        P.svg("rect", {class: s.status.code ? "bar err" : "bar", x: x.toFixed(1), y: 1,
                       width: Math.max(2, s.durationNano / total * 1000).toFixed(1), height: 8})]);
      return P.el("li", {class: "span d" + Math.min(item.depth, 12) +
                         (params.span === s.spanId ? " selected" : ""),
        "data-span-id": s.spanId, "data-parent-id": s.parentSpanId, "data-depth": item.depth}, [
        P.el("div", {class: "row"}, [
          P.el("span", {class: "name", text: s.name}),
          P.el("span", {class: "service", text: s.service}),
          P.el("span", {class: "n", "data-duration": s.durationNano, text: P.duration(s.durationNano)}),
          bar]),
        item.orphan ? P.el("div", {class: "note", text: "its parent " + s.parentSpanId +
          " is not kept"}) : null,
        details(s)]);
    });
    traceNode.replaceChildren(
      P.el("h2", null, ["Trace ", P.el("code", {text: params.trace})]),
      P.el("p", {class: "note", text: spans.length + " spans, " + P.duration(total) +
        ", started " + P.date(t0 / 1e9) + (doc.matched > spans.length ? " (the first " +
        spans.length + " of " + doc.matched + " are shown)" : "")}),
      P.el("ol", {class: "tree"}, rows));
    traceNode.hidden = false;
  }

  // -- the view in the hash --------------------------------------------------

  function show() {
    var params = P.hashParams();
    if (location.hash === shownHash) return;
    var before = new URLSearchParams(shownHash ? shownHash.slice(1) : "");
    shownHash = location.hash;
    var listed = params.name && (params.latency || params.errors);
    spansNode.hidden = !listed;
    traceNode.hidden = !params.trace;
    var failed = function (node) {
      return function (err) {
        node.replaceChildren(P.el("p", {class: "note err", text: "cannot load: " + err.message}));
        node.hidden = false;
      };
    };
    if (params.trace) {
      get({trace: params.trace, limit: 0}).then(function (doc) { drawTrace(params, doc); },
                                                 failed(traceNode));
    }
    var same = ["name", "latency", "errors"].every(function (k) {
      return (before.get(k) || "") === (params[k] || "");
    });
    if (listed && !(same && spansNode.firstChild)) {
      var q = {name: params.name, limit: 100};
      if (params.errors) q.errors = "1"; else q.latency = params.latency;
      get(q).then(function (doc) { drawSpans(params, doc); }, failed(spansNode));
    }
  }

  window.addEventListener("hashchange", show);
  P.poll(json + "?limit=0", function (doc) {
    last = doc;
    polls++;
    drawNames(doc);
    var total = 0;
    doc.spanNames.forEach(function (r) { total += r.count; });
    P.status(doc.spanNames.length + " span names, " + total + " spans received, " + doc.kept +
      " kept \u00b7 updated " + P.clock(Date.now() / 1000) + ", every " + P.interval(doc) + " s",
      {"data-polls": polls});
    document.body.setAttribute("data-polls", polls);
    show();
  }, function (err) {
    P.status("cannot read the spans (" + err.message + "): retrying", {"data-error": err.message});
  });
})();
