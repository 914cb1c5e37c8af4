// The status page: polls the JSON summary and draws it; keeps a short series of the 5-minute rates for sparklines.
// Any field may be missing (an older service, a stage with no timeout): what is not there reads "—".
"use strict";
/* global EddieFormat */
(function () {
  var body = document.body;
  var SUMMARY_URL = body.dataset.summaryUrl;
  var REFRESH_MS = Number(body.dataset.refreshMs) || 2000;
  // Points per sparkline: two minutes of history at the default refresh.
  var POINTS = 60;
  var SVG = "http://www.w3.org/2000/svg";

  // The formats live in format.js, loaded before this script.
  var percent = EddieFormat.percent;
  var duration = EddieFormat.duration;
  var ratio = EddieFormat.ratio;
  var plain = EddieFormat.plain;
  var perMinute = EddieFormat.perMinute;
  var hours = EddieFormat.hours;
  var usd = EddieFormat.usd;

  var INDICATORS = {
    success_rate: { label: "Success rate", format: percent },
    latency_p99_seconds: { label: "Latency p99", format: duration },
    timeouts_per_hour: { label: "Timeouts per hour", format: plain },
    merge_efficiency: { label: "Merge efficiency", format: percent },
    agent_balance_ratio: { label: "Agent balance", format: ratio },
  };
  var RATES = [
    { key: "task_split", label: "Splits" },
    { key: "timeout_events", label: "Timeouts" },
    { key: "task_failure", label: "Failures" },
    { key: "merge_chunks_combined", label: "Merged chunks" },
  ];
  var OPS = { ">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=" };
  var STATES = {
    ok: { text: "ok", mark: "✓" },
    failing: { text: "not ok", mark: "✗" },
    "no-data": { text: "no data", mark: "–" },
  };

  // The summary's reasons for a stage's timeout (see eddie_otel.timeouts.verdict).
  var NOT_ENOUGH_DATA = "not enough data";

  var series = {};
  RATES.forEach(function (rate) {
    series[rate.key] = [];
  });

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The item of `list` whose data-<attribute> is `key`. When there is none, a new one: an <li> of
  // `className` with a "name" span saying `label`, then the nodes `parts()` makes, appended to `list`.
  function keyedItem(list, attribute, key, className, label, parts) {
    var item = list.querySelector("[data-" + attribute + '="' + key + '"]');
    if (item) return item;
    item = element("li", className);
    item.dataset[attribute] = key;
    item.appendChild(element("span", "name", label));
    parts().forEach(function (part) {
      item.appendChild(part);
    });
    return list.appendChild(item);
  }

  // A finite number, or null for anything else (missing, null, a string).
  function number(value) {
    return typeof value === "number" && isFinite(value) ? value : null;
  }

  function stateOf(indicator) {
    if (indicator.ok === null || indicator.value === null) return "no-data";
    return indicator.ok ? "ok" : "failing";
  }

  function renderIndicators(indicators) {
    var list = document.getElementById("indicators");
    var failing = 0;
    var ok = 0;
    indicators.forEach(function (indicator, position) {
      var spec = INDICATORS[indicator.name] || { label: indicator.name, format: plain };
      var item = keyedItem(list, "indicator", indicator.name, "indicator", spec.label, function () {
        return [element("span", "value"), element("span", "target"), element("span", "state")];
      });
      if (list.children[position] !== item) list.insertBefore(item, list.children[position] || null);
      var state = stateOf(indicator);
      if (state === "ok") ok += 1;
      if (state === "failing") failing += 1;
      item.dataset.state = state;
      item.classList.toggle("failing", state === "failing");
      var value = item.querySelector(".value");
      value.dataset.value = indicator.value === null ? "" : String(indicator.value);
      value.textContent = indicator.value === null ? "—" : spec.format(indicator.value);
      item.querySelector(".target").textContent =
        "target " + (OPS[indicator.target.op] || indicator.target.op) + " " + spec.format(indicator.target.value);
      item.querySelector(".state").textContent = STATES[state].mark + " " + STATES[state].text;
    });
    var verdict = document.getElementById("verdict");
    verdict.dataset.state = failing ? "failing" : ok ? "ok" : "no-data";
    verdict.textContent = failing
      ? failing + " not ok"
      : ok + " of " + indicators.length + " ok";
  }

  function sparkline(values) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 100 30");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    var top = Math.max.apply(null, values.concat([0]));
    var step = 100 / (POINTS - 1);
    var start = (POINTS - values.length) * step;
    var points = values.map(function (value, i) {
      var y = top > 0 ? 28 - (value / top) * 26 : 28;
      return (start + i * step).toFixed(2) + "," + y.toFixed(2);
    });
    if (points.length === 1) points.unshift((start - step).toFixed(2) + "," + points[0].split(",")[1]);
    var area = document.createElementNS(SVG, "polygon");
    area.setAttribute("class", "area");
    var first = points[0].split(",")[0];
    area.setAttribute("points", first + ",30 " + points.join(" ") + " 100,30");
    var line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("points", points.join(" "));
    svg.appendChild(area);
    svg.appendChild(line);
    return svg;
  }

  function renderRates(window5m) {
    var list = document.getElementById("rates");
    RATES.forEach(function (rate) {
      var value = (window5m.rates && window5m.rates[rate.key]) || 0;
      var counted = (window5m.counts && window5m.counts[rate.key]) || 0;
      var points = series[rate.key];
      points.push(value);
      if (points.length > POINTS) points.shift();
      var item = keyedItem(list, "rate", rate.key, "rate", rate.label, function () {
        var value = element("span", "value");
        value.appendChild(element("span", "number"));
        value.appendChild(element("span", "unit", " /min"));
        return [value, element("span", "count"), sparkline(points)];
      });
      var shown = item.querySelector(".value");
      shown.dataset.value = String(value);
      shown.querySelector(".number").textContent = perMinute(value);
      item.querySelector(".count").textContent = plain(counted) + " in 5 min";
      item.replaceChild(sparkline(points), item.querySelector("svg"));
    });
  }

  // Rows are lists of cells, or {cells, data, detail}: `data` sets the row's data attributes, and
  // `detail` ({text, data}) adds a row under it whose one cell spans the table.
  function fillTable(id, rows) {
    var table = document.getElementById(id);
    var tbody = table.tBodies[0];
    var fresh = document.createElement("tbody");
    var columns = table.tHead.rows[0].cells.length;
    rows.forEach(function (given) {
      var spec = Array.isArray(given) ? { cells: given } : given;
      var row = document.createElement("tr");
      setData(row, spec.data);
      spec.cells.forEach(function (cell, i) {
        var td = element(i === 0 ? "th" : "td", cell.className || (i === 0 ? "" : "num"));
        if (i === 0) td.scope = "row";
        if (cell.title) td.title = cell.title;
        if (cell.node) td.appendChild(cell.node);
        else td.textContent = cell.text;
        row.appendChild(td);
      });
      fresh.appendChild(row);
      if (spec.detail) {
        row.classList.add("has-detail");
        var detail = element("tr", "detail-row");
        setData(detail, spec.data);
        setData(detail, spec.detail.data);
        var cell = element("td", "detail", spec.detail.text);
        cell.colSpan = columns;
        detail.appendChild(cell);
        fresh.appendChild(detail);
      }
    });
    table.replaceChild(fresh, tbody);
    table.hidden = rows.length === 0;
    document.getElementById(id + "-empty").hidden = rows.length !== 0;
  }

  function setData(node, data) {
    Object.keys(data || {}).forEach(function (key) {
      node.dataset[key] = data[key];
    });
  }

  function renderAgents(agents) {
    var names = Object.keys(agents).sort();
    var most = Math.max.apply(null, names.map(function (name) { return agents[name].executed; }).concat([0]));
    fillTable(
      "agents",
      names.map(function (name) {
        var load = agents[name];
        var meter = document.createElement("meter");
        meter.min = 0;
        meter.max = most || 1;
        meter.value = load.executed;
        meter.title = plain(load.executed) + " executed";
        return [
          { text: name, className: "label" },
          { text: plain(load.active) },
          { text: plain(load.executed) },
          { node: meter, className: "bar-col" },
        ];
      })
    );
  }

  // The line under a stage that says why its timeout is judged so: "too tight: 12.0% of tasks hit it".
  function timeoutReason(timeout) {
    var reason = typeof timeout.reason === "string" ? timeout.reason : "";
    var share = number(timeout.hit_share);
    var samples = number(timeout.samples);
    var p99 = number(timeout.p99);
    if (reason === "too tight" || reason === "ok") {
      return share === null ? reason : reason + ": " + percent(share) + " of tasks hit it";
    }
    if (reason === "too loose") {
      var cause = p99 === null ? "" : ": p99 of successful tasks (" + duration(p99) + ") is under a third of it";
      return reason + cause;
    }
    if (reason === NOT_ENOUGH_DATA) {
      if (samples === null) return reason;
      return reason + ": " + plain(samples) + " successful task" + (samples === 1 ? "" : "s") + " so far";
    }
    return reason;
  }

  // Per stage with latency or a timeout: the percentiles, the timeout in use, the recommended one and why.
  function renderLatency(latency, timeouts) {
    var stages = Object.keys(latency).concat(Object.keys(timeouts).filter(function (stage) {
      return !Object.prototype.hasOwnProperty.call(latency, stage);
    }));
    fillTable(
      "latency",
      stages.sort().map(function (stage) {
        var p = latency[stage] || {};
        var t = timeouts[stage];
        var row = {
          data: { stage: stage },
          cells: [
            { text: stage, className: "label" },
            { text: plain(p.samples), className: "num optional" },
            { text: duration(p.p50), className: "num optional" },
            { text: duration(p.p95), className: "num optional" },
            { text: duration(p.p99) },
            { text: "—", className: "num timeout" },
            { text: "—", className: "num recommended" },
          ],
        };
        if (t && typeof t === "object") {
          var recommended = number(t.recommended_seconds);
          var samples = number(t.samples);
          row.cells[5].text = duration(t.timeout_seconds);
          // Too few successful tasks: the reason where the number would be.
          var unknown = recommended === null && t.reason === NOT_ENOUGH_DATA;
          row.cells[6].text = unknown ? NOT_ENOUGH_DATA : duration(recommended);
          if (recommended === null) row.cells[6].className += " muted";
          if (samples !== null) {
            row.cells[6].title = "from " + plain(samples) + " successful task" + (samples === 1 ? "" : "s");
          }
          var reason = timeoutReason(t);
          if (reason) row.detail = { text: reason, data: { reason: String(t.reason) } };
        }
        return row;
      })
    );
  }

  function renderFallback(fallback) {
    var given = fallback && typeof fallback === "object" ? fallback : {};
    var split = number(given.split_tasks);
    var list = document.getElementById("fallback");
    var empty = document.getElementById("fallback-empty");
    var none = split === null || split <= 0;
    list.hidden = none;
    empty.hidden = !none;
    if (none) {
      // Chunks of a split task that is still running: their time is counted before the task is.
      empty.textContent =
        number(given.chunk_seconds) > 0 ? "No split task has finished yet." : "No task has been split yet.";
      return;
    }
    var rescued = number(given.rescued);
    var failed = number(given.failed);
    var seconds = number(given.chunk_seconds);
    var cost = number(given.cost_usd);
    var perRescued = rescued !== null && rescued > 0 && cost !== null ? cost / rescued : null;
    var figures = [
      {
        key: "rescued",
        label: "Rescued",
        value: rescued,
        text: plain(rescued),
        detail: plain(failed) + " failed of " + plain(split) + " split task" + (split === 1 ? "" : "s"),
      },
      {
        key: "rescue_ratio",
        label: "Rescue ratio",
        value: number(given.rescue_ratio),
        text: percent(given.rescue_ratio),
        detail: "rescued of finished split tasks",
      },
      {
        key: "chunk_hours",
        label: "Chunk time",
        value: seconds === null ? null : seconds / 3600,
        text: hours(seconds),
        detail: duration(seconds) + " in chunks of splits",
      },
      {
        key: "cost_per_rescued",
        label: "Cost per rescued task",
        value: perRescued,
        text: usd(perRescued),
        detail: usd(cost) + " spent in chunks of splits",
      },
    ];
    figures.forEach(function (figure) {
      var item = keyedItem(list, "fallback", figure.key, "figure", figure.label, function () {
        return [element("span", "value"), element("span", "detail")];
      });
      var value = item.querySelector(".value");
      value.dataset.value = figure.value === null ? "" : String(figure.value);
      value.textContent = figure.text;
      item.querySelector(".detail").textContent = figure.detail;
    });
  }

  function setConnection(state, text) {
    var node = document.getElementById("connection");
    node.dataset.state = state;
    node.textContent = text;
  }

  function render(summary) {
    renderIndicators(summary.indicators || []);
    renderRates((summary.windows && summary.windows["5m"]) || { rates: {}, counts: {} });
    renderAgents(summary.agents || {});
    renderFallback(summary.fallback);
    renderLatency(summary.latency || {}, summary.timeouts || {});
    var now = new Date();
    setConnection("live", "live");
    document.getElementById("updated").textContent =
      "Updated " + now.toLocaleTimeString() + " · every " + REFRESH_MS / 1000 + " s";
    body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
  }

  function refresh() {
    fetch(SUMMARY_URL, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("the summary answered " + response.status);
        return response.json();
      })
      .then(render)
      .catch(function (error) {
        setConnection("offline", "cannot reach the service; retrying (" + error.message + ")");
      })
      .then(function () {
        window.setTimeout(refresh, REFRESH_MS);
      });
  }

  refresh();
})();
