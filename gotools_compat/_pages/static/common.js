/* Helpers shared by the live pages.  Every string from the server becomes a
   text node or an attribute value (createElement, textContent, setAttribute):
   nothing the server sends is ever parsed as HTML. */
"use strict";

var P = (function () {
  var SVG_NS = "http://www.w3.org/2000/svg";

  function append(node, children) {
    if (children === undefined || children === null) return node;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return node;
    Object.keys(attrs).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    });
    return node;
  }

  /* el("td", {class: "n", "data-x": 1}, ["text", childNode]) */
  function el(tag, attrs, children) {
    return append(setAttrs(document.createElement(tag), attrs), children);
  }

  function svg(tag, attrs, children) {
    return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
  }

  /* A number from the JSON (non-finite ones come as "NaN", "+Inf", "-Inf"). */
  function num(v) {
    if (typeof v === "number") return v;
    if (v === "+Inf") return Infinity;
    if (v === "-Inf") return -Infinity;
    return NaN;
  }

  function fmt(v) {
    v = num(v);
    if (!isFinite(v)) return isNaN(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
    var a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e15) return v.toLocaleString("en-US");
    if (a !== 0 && (a >= 1e15 || a < 1e-3)) return v.toExponential(3);
    return String(parseFloat(v.toPrecision(4)));
  }

  function pad(n, w) { n = String(n); while (n.length < (w || 2)) n = "0" + n; return n; }

  /* Local wall-clock time of Unix seconds, to the millisecond when asked. */
  function clock(seconds, ms) {
    var d = new Date(seconds * 1000);
    var text = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    return ms ? text + "." + pad(d.getMilliseconds(), 3) : text;
  }

  function date(seconds) {
    var d = new Date(seconds * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      clock(seconds, true);
  }

  function ago(seconds) {
    if (seconds < 1) return "just now";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    return Math.round(seconds / 3600) + " h ago";
  }

  function duration(ns) {
    if (ns < 1e3) return ns + " ns";
    if (ns < 1e6) return parseFloat((ns / 1e3).toPrecision(4)) + " \u00b5s";
    if (ns < 1e9) return parseFloat((ns / 1e6).toPrecision(4)) + " ms";
    return parseFloat((ns / 1e9).toPrecision(4)) + " s";
  }

  /* The poll interval: ?interval=S in the page's URL, else the server's. */
  function interval(doc) {
    var asked = parseFloat(new URLSearchParams(location.search).get("interval"));
    if (isFinite(asked) && asked > 0) return Math.max(0.1, asked);
    var given = doc && num(doc.interval);
    return isFinite(given) && given > 0 ? given : 2;
  }

  /* Fetch `url` as JSON now and then every interval(doc) seconds while the
     page is shown; onData(doc) for each answer, onError(err) for a failure. */
  function poll(url, onData, onError) {
    var timer = null, last = null, busy = false;
    function next() {
      clearTimeout(timer);
      timer = setTimeout(run, interval(last) * 1000);
    }
    function run() {
      if (busy) return;
      if (document.hidden) { next(); return; }
      busy = true;
      fetch(typeof url === "function" ? url() : url, {cache: "no-store"})
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (doc) { last = doc; onData(doc); }, function (err) { onError(err); })
        .then(function () { busy = false; next(); });
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden) run(); });
    run();
    return {now: run};
  }

  function status(text, attrs) {
    var node = document.getElementById("status");
    node.textContent = text;
    setAttrs(node, attrs);
  }

  /* #a=1&b=2 <-> {a: "1", b: "2"} */
  function hashParams() {
    var out = {};
    new URLSearchParams(location.hash.slice(1)).forEach(function (v, k) { out[k] = v; });
    return out;
  }

  function hashOf(params) {
    var q = new URLSearchParams();
    Object.keys(params).forEach(function (k) { if (params[k]) q.set(k, params[k]); });
    return "#" + q.toString();
  }

  return {el: el, svg: svg, num: num, fmt: fmt, clock: clock, date: date, ago: ago,
          duration: duration, interval: interval, poll: poll, status: status,
          hashParams: hashParams, hashOf: hashOf};
})();
