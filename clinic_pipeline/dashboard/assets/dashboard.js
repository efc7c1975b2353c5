/* Ketamine infusion safety dashboard: plain JavaScript and SVG, no network access.
 *
 * Every number comes from the JSON embedded in the page, already suppressed in Python: the page never adds
 * up counts itself, it only looks up the pre-computed cell for the chosen filters. A count of null is a
 * suppressed count and is written "<11"; a rate is shown only when the published cells carry it.
 */
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("dashboard-data").textContent);
  const SUP = DATA.meta.suppressed_label;
  const TABLES = DATA.tables;
  const INC = DATA.incidence;
  const SVGNS = "http://www.w3.org/2000/svg";
  const FILTER_LABELS = {
    clinic_id: "Clinic",
    protocol: "Protocol",
    infusion_bucket: "Infusion number",
    conmed_stratum: "Con-med stratum",
    severity: "Severity",
    seriousness: "Seriousness",
    relatedness: "Relatedness",
  };
  const EVENT_FILTERS = ["severity", "seriousness", "relatedness"];
  const state = {
    filters: Object.fromEntries(Object.keys(FILTER_LABELS).map((k) => [k, "all"])),
    incidenceMeasure: "patients",
    spcChart: "p_sessions_with_ae",
    funnelMeasure: "sessions_with_any_ae",
    note: "",
  };

  // ---------------------------------------------------------------------------------------------- helpers

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmtCount(value) {
    return value === null || value === undefined ? SUP : Number(value).toLocaleString("en-US");
  }

  function fmtNum(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function countCell(value) {
    return el("td", { class: value === null ? "count suppressed" : "count", text: fmtCount(value) });
  }

  function rowsOf(name) {
    const table = TABLES[name];
    return table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, row[i]])));
  }

  function humanize(text) {
    return String(text).replace(/_/g, " ");
  }

  function activeFilters() {
    return Object.entries(state.filters).filter(([, v]) => v !== "all");
  }

  function appliedNote(used) {
    const ignored = activeFilters()
      .map(([k]) => k)
      .filter((k) => !used.includes(k));
    const parts = [];
    parts.push(used.length ? "Follows: " + used.map((k) => FILTER_LABELS[k] || k).join(", ") + "." : "Network-wide.");
    if (ignored.length) parts.push(" Not split by " + ignored.map((k) => FILTER_LABELS[k]).join(", ") + ": showing all.");
    return el("div", { class: "applied", text: parts.join("") });
  }

  function csvDownload(name, columns, rows) {
    const escape = (v) => {
      const text = v === null || v === undefined ? "" : String(v);
      return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    };
    const lines = [columns.map(escape).join(",")].concat(rows.map((r) => r.map(escape).join(",")));
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const link = el("a", { href: URL.createObjectURL(blob), download: name + "-view.csv" });
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  function exportBar(name, columns, rows) {
    return el("div", { class: "export" }, [
      el("button", {
        type: "button",
        "data-csv": name,
        text: "Download this view (CSV)",
        onclick: () => csvDownload(name, columns, rows()),
      }),
      el("a", { href: "csv/" + name + ".csv", text: "All filter combinations: csv/" + name + ".csv" }),
    ]);
  }

  // The table rows matching the current filters on the table's own filter columns ("all" rows included).
  function matching(name, keys) {
    return rowsOf(name).filter((row) => keys.every((k) => row[k] === state.filters[k]));
  }

  function dataTable(columns, rows, options) {
    const opts = options || {};
    const head = el(
      "tr",
      {},
      columns.map((c) => el("th", { class: c.text ? "text" : null, text: c.label })),
    );
    const body = rows.map((row) =>
      el(
        "tr",
        { class: opts.rowClass ? opts.rowClass(row) : null },
        columns.map((c) => {
          const value = row[c.key];
          if (c.count) return countCell(value);
          if (c.format) return el("td", { class: c.text ? "text" : null }, [c.format(value, row)]);
          return el("td", { class: c.text ? "text" : null, text: value === null ? "–" : String(value) });
        }),
      ),
    );
    return el("div", { class: "table-wrap" }, [el("table", { class: "data" }, [el("thead", {}, head), el("tbody", {}, body)])]);
  }

  // ---------------------------------------------------------------------------------------------- charts

  function scale(domain, range) {
    const [d0, d1] = domain;
    const [r0, r1] = range;
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / (count || 5);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
    return ticks;
  }

  function extent(values, pad) {
    const finite = values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
    if (!finite.length) return [0, 1];
    let lo = Math.min(...finite);
    let hi = Math.max(...finite);
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    const margin = (hi - lo) * (pad === undefined ? 0.05 : pad);
    return [lo - margin, hi + margin];
  }

  // A generic x/y chart: spec = {width, height, x: [lo, hi], y: [lo, hi], xLabel, yLabel, xTicks, layers}.
  // Layers draw themselves with the scales: band, line, marks, hline, hband, text.
  function chart(spec) {
    const width = spec.width || 560;
    const height = spec.height || 260;
    const m = { left: 52, right: 16, top: 12, bottom: 38 };
    const x = scale(spec.x, [m.left, width - m.right]);
    const y = scale(spec.y, [height - m.bottom, m.top]);
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: width, height: height, role: "img", "aria-label": spec.title || "" });
    const axis = svgEl("g", { class: "axis" });
    for (const t of niceTicks(spec.y[0], spec.y[1], 5)) {
      axis.appendChild(svgEl("line", { class: "grid", x1: m.left, x2: width - m.right, y1: y(t), y2: y(t) }));
      axis.appendChild(svgEl("text", { x: m.left - 6, y: y(t) + 4, "text-anchor": "end" }, fmtTick(t)));
    }
    const xTicks = spec.xTicks || niceTicks(spec.x[0], spec.x[1], 8).map((t) => [t, fmtTick(t)]);
    for (const [t, label] of xTicks) {
      axis.appendChild(svgEl("text", { x: x(t), y: height - m.bottom + 14, "text-anchor": "middle" }, label));
    }
    axis.appendChild(svgEl("line", { x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom }));
    axis.appendChild(svgEl("line", { x1: m.left, x2: m.left, y1: m.top, y2: height - m.bottom }));
    if (spec.xLabel) axis.appendChild(svgEl("text", { x: (m.left + width - m.right) / 2, y: height - 6, "text-anchor": "middle" }, spec.xLabel));
    if (spec.yLabel) {
      axis.appendChild(
        svgEl("text", { x: -(m.top + height - m.bottom) / 2, y: 12, transform: "rotate(-90)", "text-anchor": "middle" }, spec.yLabel),
      );
    }
    svg.appendChild(axis);
    const clampY = (v) => Math.max(spec.y[0], Math.min(spec.y[1], v));
    for (const layer of spec.layers) {
      const cls = layer.cls || "";
      if (layer.type === "hband") {
        const y0 = y(clampY(layer.from));
        const y1 = y(clampY(layer.to));
        svg.appendChild(svgEl("rect", { class: cls, x: m.left, width: width - m.left - m.right, y: Math.min(y0, y1), height: Math.abs(y1 - y0) }));
        if (layer.label) svg.appendChild(svgEl("text", { x: width - m.right - 4, y: Math.min(y0, y1) + 12, "text-anchor": "end" }, layer.label));
      } else if (layer.type === "band") {
        const pts = layer.points.filter((p) => p.lo !== null && p.hi !== null);
        if (pts.length < 2) continue;
        const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.x)},${y(clampY(p.hi))}`).join("") +
          pts.slice().reverse().map((p) => `L${x(p.x)},${y(clampY(p.lo))}`).join("") + "Z";
        svg.appendChild(svgEl("path", { class: "band " + cls, d: d, "data-points": pts.length }));
      } else if (layer.type === "line") {
        // Breaks at missing (suppressed) values rather than drawing through them.
        let d = "";
        let pen = false;
        let drawn = 0;
        for (const p of layer.points) {
          if (p.y === null || p.y === undefined) {
            pen = false;
            continue;
          }
          d += `${pen ? "L" : "M"}${x(p.x)},${y(clampY(p.y))}`;
          pen = true;
          drawn += 1;
        }
        if (drawn) svg.appendChild(svgEl("path", { class: "line " + cls, d: d, "data-points": drawn }));
      } else if (layer.type === "step") {
        let d = "";
        let pen = false;
        for (const p of layer.points) {
          if (p.y === null || p.y === undefined) {
            pen = false;
            continue;
          }
          const x0 = x(p.x - 0.5);
          const x1 = x(p.x + 0.5);
          d += `${pen ? "L" : "M"}${x0},${y(clampY(p.y))}L${x1},${y(clampY(p.y))}`;
          pen = true;
        }
        if (d) svg.appendChild(svgEl("path", { class: "limit " + cls, d: d }));
      } else if (layer.type === "hline") {
        svg.appendChild(svgEl("line", { class: cls, x1: m.left, x2: width - m.right, y1: y(clampY(layer.y)), y2: y(clampY(layer.y)) }));
        if (layer.label) svg.appendChild(svgEl("text", { x: width - m.right - 4, y: y(clampY(layer.y)) - 3, "text-anchor": "end" }, layer.label));
      } else if (layer.type === "marks") {
        for (const p of layer.points) {
          if (p.y === null || p.y === undefined) continue;
          const mark = svgEl("circle", {
            class: "mark " + cls + " " + (p.cls || ""),
            cx: x(p.x),
            cy: y(clampY(p.y)),
            r: p.r || 3.5,
            "data-x": p.x,
            "data-y": p.label === undefined ? p.y : p.label,
          });
          mark.appendChild(svgEl("title", {}, p.title || `${p.x}: ${p.label === undefined ? fmtTick(p.y) : p.label}`));
          svg.appendChild(mark);
        }
      } else if (layer.type === "text") {
        for (const p of layer.points) svg.appendChild(svgEl("text", { class: "cell-text", x: x(p.x) + 5, y: y(clampY(p.y)) - 5 }, p.text));
      }
    }
    return svg;
  }

  function fmtTick(v) {
    if (Math.abs(v) >= 1000) return Number(v).toLocaleString("en-US", { maximumFractionDigits: 0 });
    if (Math.abs(v) < 1 && v !== 0) return Number(v).toFixed(2);
    return String(+Number(v).toFixed(2));
  }

  // Horizontal bars: items = [{label, value|null, text}]; null values show "<11" without a bar.
  function barChart(items, options) {
    const opts = options || {};
    const width = opts.width || 560;
    const rowH = 18;
    const left = opts.left || 200;
    const height = items.length * rowH + 26;
    const max = Math.max(opts.max || 0, ...items.map((i) => (i.value === null ? 0 : i.value)), 1e-9);
    const x = scale([0, max], [left, width - 60]);
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: width, height: height, role: "img", "aria-label": opts.title || "" });
    items.forEach((item, i) => {
      const top = 6 + i * rowH;
      svg.appendChild(svgEl("text", { x: left - 6, y: top + 12, "text-anchor": "end" }, item.label));
      if (item.value === null || item.value === undefined) {
        svg.appendChild(svgEl("text", { class: "suppressed", x: left + 4, y: top + 12 }, SUP));
        return;
      }
      const bar = svgEl("rect", {
        class: "bar mark-bar " + (opts.cls || ""),
        x: left,
        y: top + 2,
        height: rowH - 5,
        width: Math.max(1, x(item.value) - left),
        "data-value": item.value,
      });
      bar.appendChild(svgEl("title", {}, `${item.label}: ${item.text}`));
      svg.appendChild(bar);
      svg.appendChild(svgEl("text", { x: x(item.value) + 4, y: top + 12 }, item.text));
    });
    const axisY = height - 16;
    svg.appendChild(svgEl("line", { class: "grid", x1: left, x2: width - 60, y1: axisY, y2: axisY }));
    if (opts.axisLabel) svg.appendChild(svgEl("text", { x: left, y: axisY + 13 }, opts.axisLabel));
    return svg;
  }

  function section(id, title, used, body, notes) {
    return el("section", { class: "view", id: id }, [el("h2", { text: title }), appliedNote(used)].concat(body, notes ? [el("div", { class: "notes", text: notes })] : []));
  }

  function empty(text) {
    return el("div", { class: "empty", text: text });
  }

  // ---------------------------------------------------------------------------------------------- header

  function renderHeader() {
    const meta = DATA.meta;
    return el("header", { class: "top" }, [
      el("h1", { text: meta.title }),
      el("div", {
        class: "meta",
        text: `Data as of ${meta.as_of || "unknown"} · run ${meta.run_id} · rules ${meta.rules_digest || "?"} · counts 1–${meta.threshold - 1} shown as "${SUP}"`,
      }),
    ]);
  }

  function renderQuality() {
    const q = DATA.quality;
    const items = [];
    const nonzero = (v) => v !== 0 && v !== undefined && v !== null;
    const quarantined = Object.entries(q.rows_quarantined_by_source || {});
    if (quarantined.length) {
      items.push("Rows held in quarantine: " + quarantined.map(([s, n]) => `${s} ${fmtBanner(n)}`).join(", ") + ".");
    }
    items.push(
      `Batches stopped by a quality gate: ${fmtBanner(q.batches_stopped_by_gate)}; files quarantined whole: ${fmtBanner(q.files_quarantined)}; batches not reconciled: ${fmtBanner(q.batches_unreconciled)}.`,
    );
    const behind = Object.entries(q.days_behind_by_source || {});
    if (behind.length) {
      items.push(
        "Latest data per source (days before the as-of time): " +
          behind.map(([s, d]) => `${s} ${d === null ? "unknown" : d}${d !== null && d > 1 ? " (late)" : ""}`).join(", ") +
          ".",
      );
    }
    items.push(
      `Sessions without vital signs: ${fmtBanner(q.sessions_without_vital_signs)}; sessions known only from readings: ${fmtBanner(q.sessions_not_staged_with_readings)}; events of sessions not staged: ${fmtBanner(q.events_without_staged_session)}.`,
    );
    if ((q.unmapped_terms || []).length) items.push("Unmapped adverse-event terms: " + q.unmapped_terms.join(", ") + ".");
    const statuses = Object.entries(q.batches_by_source_status || {})
      .map(([s, c]) => `${s}: ` + Object.entries(c).map(([k, v]) => `${humanize(k)} ${fmtBanner(v)}`).join(", "))
      .join("; ");
    if (statuses) items.push("Batches: " + statuses + ".");
    const warn =
      quarantined.some(([, n]) => nonzero(n)) ||
      nonzero(q.batches_stopped_by_gate) ||
      nonzero(q.files_quarantined) ||
      nonzero(q.batches_unreconciled) ||
      behind.some(([, d]) => d !== null && d > 1);
    return el("div", { class: "banner quality" + (warn ? " warn" : ""), id: "data-quality" }, [
      el("h2", { text: warn ? "Data quality: some data is held back or late" : "Data quality" }),
      el("ul", {}, items.map((t) => el("li", { text: t }))),
    ]);
  }

  function fmtBanner(v) {
    return typeof v === "number" ? fmtCount(v) : String(v);
  }

  function renderDisclaimers() {
    return el("div", { class: "banner disclaimers", id: "disclaimers" }, [
      el("h2", { text: "Read before use" }),
      el("ul", {}, DATA.disclaimers.map((t) => el("li", { text: t }))),
    ]);
  }

  function renderFilters() {
    const bar = el("div", { class: "filters", id: "filters" });
    for (const [key, label] of Object.entries(FILTER_LABELS)) {
      const select = el(
        "select",
        {
          id: "filter-" + key,
          "data-filter": key,
          onchange: (event) => setFilter(key, event.target.value),
        },
        DATA.filters[key].map((value) =>
          el("option", { value: value, selected: value === state.filters[key], text: value === "all" ? "All" : humanize(value) }),
        ),
      );
      bar.appendChild(el("label", {}, [label, select]));
    }
    bar.appendChild(el("button", { type: "button", id: "filter-reset", text: "Reset", onclick: resetFilters }));
    bar.appendChild(el("div", { class: "note", id: "filter-note", text: state.note }));
    return bar;
  }

  function setFilter(key, value) {
    state.filters[key] = value;
    state.note = "";
    if (EVENT_FILTERS.includes(key) && value !== "all") {
      // One event filter at a time: per-patient counts are pre-computed for one of them, not combinations.
      for (const other of EVENT_FILTERS) {
        if (other !== key && state.filters[other] !== "all") {
          state.filters[other] = "all";
          state.note = `One event filter at a time: ${FILTER_LABELS[other].toLowerCase()} reset to All.`;
        }
      }
    }
    render();
  }

  function resetFilters() {
    for (const key of Object.keys(state.filters)) state.filters[key] = "all";
    state.note = "";
    render();
  }

  // ---------------------------------------------------------------------------------------------- views

  function incidenceView() {
    const f = state.filters;
    const labels = INC.labels;
    const index = (dim, value) => labels[dim].indexOf(value);
    const exposureKey = ["clinic_id", "protocol", "conmed_stratum", "infusion_bucket"].map((d) => index(d, f[d]));
    const eventDim = EVENT_FILTERS.find((d) => f[d] !== "all");
    const eventKey = eventDim ? index("event_filter", `${eventDim}=${f[eventDim]}`) : 0;
    const body = [];
    const used = ["clinic_id", "protocol", "conmed_stratum", "infusion_bucket", ...EVENT_FILTERS];
    const known = exposureKey.every((i) => i >= 0);
    const exposure = known ? INC.exposure[exposureKey.join(".")] : undefined;
    if (!exposure) {
      return section("incidence", "Adverse-event incidence by body system and term", used, [empty("No infusions match these filters.")]);
    }
    const [infusions, patients] = exposure;
    body.push(
      el("div", { class: "controls", id: "incidence-exposure" }, [
        `Infusions: ${fmtCount(infusions)} · Patients: ${fmtCount(patients)}` +
          (infusions === null
            ? " — hidden, so no rates; only the counts that can be shown are listed, every other row is hidden or 0."
            : ""),
      ]),
    );
    const view = eventKey >= 0 ? INC.views[exposureKey.join(".") + "." + eventKey] : undefined;
    const cells = new Map();
    const hidden = new Set();
    if (view) {
      for (let i = 0; i < view[0].length; i += 3) cells.set(view[0][i], { events: view[0][i + 1], patients: view[0][i + 2] });
      for (const row of view[1]) hidden.add(row);
    }
    const rows = [];
    INC.rows.forEach((meta, code) => {
      if (!cells.has(code) && !hidden.has(code)) return;
      const cell = cells.get(code) || { events: null, patients: null };
      const shown = cells.has(code);
      rows.push({
        code: code,
        level: meta.level,
        label: meta.level === "any" ? "Any adverse event" : meta.level === "body_system" ? meta.body_system : humanize(meta.term),
        body_system: meta.body_system,
        term: meta.term,
        patients: shown ? cell.patients : null,
        pct: shown && patients ? (100 * cell.patients) / patients : null,
        events: shown ? cell.events : null,
        per100: shown && infusions ? (100 * cell.events) / infusions : null,
      });
    });
    if (!rows.length) {
      body.push(
        empty(
          infusions === null
            ? `Every count of this selection is hidden ("${SUP}": fewer than 11, or hidden so that another count cannot be worked out).`
            : "No counted adverse events match these filters.",
        ),
      );
      return section("incidence", "Adverse-event incidence by body system and term", used, body);
    }
    const measure = state.incidenceMeasure;
    body.push(
      el("div", { class: "controls" }, [
        el("label", {}, [
          el("input", { type: "radio", name: "inc-measure", value: "patients", checked: measure === "patients", onchange: () => { state.incidenceMeasure = "patients"; render(); } }),
          " % of patients",
        ]),
        el("label", {}, [
          el("input", { type: "radio", name: "inc-measure", value: "events", checked: measure === "events", onchange: () => { state.incidenceMeasure = "events"; render(); } }),
          " per 100 infusions",
        ]),
      ]),
    );
    const terms = rows.filter((r) => r.level === "term");
    const value = (r) => (measure === "patients" ? r.pct : r.per100);
    body.push(
      el("div", { class: "chart", id: "incidence-chart" }, [
        barChart(
          terms.map((r) => ({ label: r.label, value: value(r), text: fmtNum(value(r), 1) })),
          { axisLabel: measure === "patients" ? "% of patients with the event" : "events per 100 infusions", title: "Incidence by term" },
        ),
      ]),
    );
    const columns = [
      { key: "label", label: "Body system / term", text: true },
      { key: "patients", label: "Patients with event", count: true },
      { key: "pct", label: "% of patients", format: (v) => fmtNum(v, 1) },
      { key: "events", label: "Events", count: true },
      { key: "per100", label: "per 100 infusions", format: (v) => fmtNum(v, 1) },
    ];
    body.push(
      dataTable(columns, rows, {
        rowClass: (r) => (r.level === "any" ? "total" : r.level === "body_system" ? "group" : "term"),
      }),
    );
    body.push(
      exportBar("ae_incidence", ["body_system", "term", "patients_with_event", "pct_patients", "events", "per_100_infusions", "patients_exposed", "infusions"], () =>
        rows.map((r) => [r.body_system, r.term, fmtCount(r.patients), r.pct === null ? "" : r.pct.toFixed(2), fmtCount(r.events), r.per100 === null ? "" : r.per100.toFixed(2), fmtCount(patients), fmtCount(infusions)]),
      ),
    );
    return section(
      "incidence",
      "Adverse-event incidence by body system and term",
      used,
      body,
      "Per patient: patients with at least one such event / patients with an infusion in the selection. Per 100 infusions: events / infusions × 100. Counted events: staff-recorded, plus detected or flagged events staff did not record; suicidality flags only when treatment-emergent.",
    );
  }

  function spcView() {
    const scope = state.filters.clinic_id === "all" ? "network" : state.filters.clinic_id;
    const chartName = state.spcChart;
    const points = rowsOf("spc_weekly").filter((r) => r.chart === chartName && r.scope === scope);
    const body = [
      el("div", { class: "controls" }, [
        el("label", {}, [
          el("input", { type: "radio", name: "spc-chart", checked: chartName === "p_sessions_with_ae", onchange: () => { state.spcChart = "p_sessions_with_ae"; render(); } }),
          " P chart: infusions with an adverse event",
        ]),
        el("label", {}, [
          el("input", { type: "radio", name: "spc-chart", checked: chartName === "u_events_per_100_infusions", onchange: () => { state.spcChart = "u_events_per_100_infusions"; render(); } }),
          " U chart: adverse events per 100 infusions",
        ]),
      ]),
    ];
    if (!points.length) {
      body.push(empty("No weekly data for this scope."));
    } else {
      const xs = points.map((p) => p.week_index);
      const ys = points.flatMap((p) => [p.value, p.lcl, p.ucl, p.center]);
      const yRange = extent(ys, 0.15);
      const center = points.find((p) => p.center !== null);
      const hiddenPoints = points.filter((p) => p.value === null).map((p) => ({ x: p.week_index, y: yRange[0], cls: "hidden-value", label: SUP, title: `week ${p.week_index}: ${SUP}` }));
      body.push(
        el("div", { class: "chart", id: "spc-chart" }, [
          el("h3", { text: `${scope === "network" ? "Network" : scope}: ${chartName.startsWith("p_") ? "proportion of infusions with an AE" : "AEs per 100 infusions"}` }),
          chart({
            x: [Math.min(...xs) - 0.6, Math.max(...xs) + 0.6],
            y: yRange,
            xLabel: "week (1 = first week in the data; open marker = incomplete week)",
            yLabel: chartName.startsWith("p_") ? "proportion" : "per 100 infusions",
            xTicks: xs.map((w) => [w, String(w)]),
            layers: [
              { type: "step", points: points.map((p) => ({ x: p.week_index, y: p.ucl })), cls: "outer" },
              { type: "step", points: points.map((p) => ({ x: p.week_index, y: p.lcl })), cls: "outer" },
              center ? { type: "hline", y: center.center, cls: "center", label: "centre " + fmtTick(center.center) } : { type: "text", points: [] },
              { type: "line", points: points.map((p) => ({ x: p.week_index, y: p.value })) },
              {
                type: "marks",
                points: points.map((p) => ({
                  x: p.week_index,
                  y: p.value,
                  cls: (p.signal ? "signal" : "") + (p.week_complete ? "" : " hidden-value"),
                  title: `week ${p.week_index}: ${fmtTick(p.value)} (n ${fmtCount(p.infusions)})${p.signal ? " — special cause" : ""}`,
                })),
              },
              { type: "marks", points: hiddenPoints },
            ],
          }),
        ]),
      );
      const columns = [
        { key: "week_index", label: "Week" },
        { key: "infusions", label: "Infusions", count: true },
        { key: "count", label: chartName.startsWith("p_") ? "Infusions with AE" : "AEs", count: true },
        { key: "value", label: "Value", format: (v) => fmtNum(v, 3) },
        { key: "center", label: "Centre", format: (v) => fmtNum(v, 3) },
        { key: "lcl", label: "LCL", format: (v) => fmtNum(v, 3) },
        { key: "ucl", label: "UCL", format: (v) => fmtNum(v, 3) },
        { key: "signal", label: "Signal", format: (v, r) => el("span", { class: v ? "signal-cell" : null, text: v === null ? "–" : v ? (r.beyond_limits ? "beyond limits" : "run of 8") : "" }) },
      ];
      body.push(dataTable(columns, points));
      body.push(exportBar("spc_weekly", TABLES.spc_weekly.columns, () => points.map((p) => TABLES.spc_weekly.columns.map((c) => (TABLES.spc_weekly.counts.includes(c) ? fmtCount(p[c]) : p[c])))));
    }
    body.push(gChart(scope));
    return section("spc", "Statistical process control", ["clinic_id"], body, TABLES.spc_weekly.notes + " Limits: p̄ ± 3√(p̄(1−p̄)/n), ū ± 3√(ū/n); special cause = a point beyond a limit or 8 in a row on one side. " + TABLES.spc_g_chart.notes);
  }

  function gChart(scope) {
    const points = rowsOf("spc_g_chart").filter((r) => r.scope === scope);
    if (!points.length) {
      return el("div", { class: "chart", id: "g-chart" }, [el("h3", { text: "G chart: infusions between severe events" }), empty("Not drawn for this scope: fewer than 11 severe events, or their count is suppressed.")]);
    }
    const values = points.map((p) => (p.infusions_between === null ? 5.5 : p.infusions_between));
    const ucl = points[0].ucl;
    const yRange = [0, Math.max(...values, ucl || 0) * 1.08 + 1];
    return el("div", { class: "chart", id: "g-chart" }, [
      el("h3", { text: "G chart: infusions between severe events (open marker: since the last one; shaded: <11)" }),
      chart({
        x: [0, points.length + 1],
        y: yRange,
        xLabel: "severe event (in order)",
        yLabel: "infusions between",
        layers: [
          { type: "hband", from: 1, to: 10, cls: "suppressed-band", label: SUP },
          ucl !== null ? { type: "hline", y: ucl, cls: "limit outer", label: "UCL " + fmtTick(ucl) } : { type: "text", points: [] },
          { type: "hline", y: points[0].center, cls: "center", label: "mean " + fmtTick(points[0].center) },
          { type: "hline", y: points[0].center_median, cls: "median", label: "median " + fmtTick(points[0].center_median) },
          { type: "line", points: points.map((p, i) => ({ x: i + 1, y: p.infusions_between === null ? 5.5 : p.infusions_between })), cls: "alt" },
          {
            type: "marks",
            points: points.map((p, i) => ({
              x: i + 1,
              y: p.infusions_between === null ? 5.5 : p.infusions_between,
              label: fmtCount(p.infusions_between),
              cls: (p.signal ? "signal" : "alt") + (p.open_interval || p.infusions_between === null ? " hidden-value" : ""),
              title: `${fmtCount(p.infusions_between)} infusions${p.open_interval ? " since the last severe event" : ""}${p.signal ? " — signal" : ""}`,
            })),
          },
        ],
      }),
    ]);
  }

  function funnelView() {
    const measure = state.funnelMeasure;
    const rows = rowsOf("funnel_clinics").filter((r) => r.measure === measure);
    const network = rows.find((r) => r.clinic_id === "network");
    const clinics = rows.filter((r) => r.clinic_id !== "network");
    const limits = rowsOf("funnel_limits").filter((r) => r.measure === measure);
    const plotted = clinics.filter((r) => r.proportion !== null && r.infusions !== null);
    const body = [
      el("div", { class: "controls" }, [
        el("label", {}, [el("input", { type: "radio", name: "funnel", checked: measure === "sessions_with_any_ae", onchange: () => { state.funnelMeasure = "sessions_with_any_ae"; render(); } }), " infusions with any adverse event"]),
        el("label", {}, [el("input", { type: "radio", name: "funnel", checked: measure === "sessions_with_severe_event", onchange: () => { state.funnelMeasure = "sessions_with_severe_event"; render(); } }), " infusions with a severe event"]),
      ]),
    ];
    const xs = limits.map((l) => l.volume).concat(plotted.map((p) => p.infusions));
    const ys = plotted.map((p) => p.proportion).concat(limits.map((l) => l.upper_998), limits.map((l) => l.lower_998));
    const xMax = Math.max(...xs, 1);
    const curve = (key) => limits.map((l) => ({ x: l.volume, y: l[key] }));
    body.push(
      el("div", { class: "chart", id: "funnel-chart" }, [
        chart({
          x: [0, xMax * 1.04],
          y: [0, Math.min(1, Math.max(...ys.filter((v) => v !== null), network ? network.target : 0) * 1.05 + 0.01)],
          xLabel: "infusions in the clinic",
          yLabel: "proportion of infusions",
          layers: [
            { type: "line", points: curve("upper_998"), cls: "limit-line" },
            { type: "line", points: curve("lower_998"), cls: "limit-line" },
            { type: "line", points: curve("upper_95"), cls: "alt" },
            { type: "line", points: curve("lower_95"), cls: "alt" },
            network ? { type: "hline", y: network.target, cls: "center", label: "network " + fmtNum(100 * network.target, 1) + " %" } : { type: "text", points: [] },
            {
              type: "marks",
              points: plotted.map((p) => ({
                x: p.infusions,
                y: p.proportion,
                cls: (p.position && p.position.startsWith("above") ? "signal" : "") + (p.clinic_id === state.filters.clinic_id ? " selected" : ""),
                title: `${p.clinic_id}: ${fmtNum(100 * p.proportion, 1)} % of ${fmtCount(p.infusions)} infusions (${humanize(p.position || "")})`,
              })),
            },
            { type: "text", points: plotted.filter((p) => p.clinic_id === state.filters.clinic_id).map((p) => ({ x: p.infusions, y: p.proportion, text: p.clinic_id })) },
          ],
        }),
      ]),
    );
    const hidden = clinics.filter((r) => r.proportion === null).map((r) => r.clinic_id);
    if (hidden.length) body.push(el("div", { class: "notes", text: "Not plotted (counts suppressed): " + hidden.join(", ") + "." }));
    const columns = [
      { key: "clinic_id", label: "Clinic", text: true },
      { key: "infusions", label: "Infusions", count: true },
      { key: "sessions_with_event", label: "Infusions with the event", count: true },
      { key: "proportion", label: "%", format: (v) => (v === null ? "–" : fmtNum(100 * v, 1)) },
      { key: "position", label: "Position", text: true, format: (v) => el("span", { class: v && v !== "within" ? "signal-cell" : null, text: v === null ? "–" : humanize(v) }) },
    ];
    const tableRows = state.filters.clinic_id === "all" ? rows : rows.filter((r) => r.clinic_id === state.filters.clinic_id || r.clinic_id === "network");
    body.push(dataTable(columns, tableRows));
    body.push(exportBar("funnel_clinics", TABLES.funnel_clinics.columns, () => tableRows.map((r) => TABLES.funnel_clinics.columns.map((c) => (TABLES.funnel_clinics.counts.includes(c) ? fmtCount(r[c]) : r[c])))));
    return section("funnel", "Clinics compared: funnel plot", ["clinic_id"], body, TABLES.funnel_clinics.notes + " Outer lines: 99.8 %; inner (orange): 95 %.");
  }

  function chosenProtocol(name) {
    const protocols = Array.from(new Set(rowsOf(name).map((r) => r.protocol))).filter((p) => p !== "all");
    const wanted = state.filters.protocol;
    if (protocols.includes(wanted)) return { protocol: wanted, note: null };
    const fallback = protocols.includes("iv_depression") ? "iv_depression" : protocols[0];
    return { protocol: fallback, note: wanted === "all" ? `Showing ${humanize(fallback || "none")}: choose a protocol to see another (curves do not add up across protocols).` : `No data for ${humanize(wanted)}.` };
  }

  function bpCurvesView() {
    const choice = chosenProtocol("bp_curves");
    const rows = rowsOf("bp_curves").filter((r) => r.protocol === choice.protocol);
    const thresholds = rowsOf("rule_thresholds").filter((r) => r.protocol === choice.protocol);
    const measures = [
      ["sbp_mmhg", "Systolic BP (mmHg)", "sbp_over"],
      ["dbp_mmhg", "Diastolic BP (mmHg)", "dbp_over"],
      ["hr_bpm", "Heart rate (/min)", "hr_over"],
      ["spo2_pct", "SpO2 (%)", "spo2_under"],
    ];
    const charts = measures.map(([measure, title, key]) => {
      const points = rows.filter((r) => r.measure === measure).sort((a, b) => a.minute_bin - b.minute_bin);
      const limits = thresholds.filter((t) => t[key] !== null && t.phase === "post_dose");
      const ys = points.flatMap((p) => [p.p10, p.p90]).concat(limits.map((t) => t[key]));
      const yRange = extent(ys, 0.05);
      const xs = points.map((p) => p.minute_bin);
      const layers = [];
      const seen = new Set();
      for (const t of limits) {
        if (seen.has(t[key])) continue;
        seen.add(t[key]);
        layers.push(key === "spo2_under" ? { type: "hband", from: yRange[0], to: t[key], cls: "danger" } : { type: "hband", from: t[key], to: yRange[1], cls: "danger" });
        layers.push({ type: "hline", y: t[key], cls: "threshold", label: `${humanize(t.rule)} ${key === "spo2_under" ? "<" : ">"} ${t[key]}` });
      }
      layers.push({ type: "band", points: points.map((p) => ({ x: p.minute_bin, lo: p.p10, hi: p.p90 })) });
      layers.push({ type: "line", points: points.map((p) => ({ x: p.minute_bin, y: p.median })) });
      layers.push({ type: "marks", points: points.map((p) => ({ x: p.minute_bin, y: p.median, r: 2.5, title: `${p.minute_bin} min: median ${fmtNum(p.median, 0)} (p10 ${fmtNum(p.p10, 0)}, p90 ${fmtNum(p.p90, 0)}; ${fmtCount(p.sessions)} sessions)` })) });
      return el("div", { class: "chart", "data-measure": measure }, [
        el("h3", { text: title }),
        points.length
          ? chart({ width: 480, height: 220, x: [Math.min(...xs, -5) - 2, Math.max(...xs, 60) + 2], y: yRange, xLabel: "minutes from the start of dosing", layers: layers })
          : empty("No readings."),
      ]);
    });
    const body = [choice.note ? el("div", { class: "notes", text: choice.note }) : null, el("div", { class: "row", id: "bp-curves" }, charts)];
    body.push(exportBar("bp_curves", TABLES.bp_curves.columns, () => rows.map((r) => TABLES.bp_curves.columns.map((c) => (TABLES.bp_curves.counts.includes(c) ? fmtCount(r[c]) : r[c])))));
    body.push(thresholdTable(thresholds));
    return section("bp-curves-view", `Vital signs during the session: ${humanize(choice.protocol || "")}`, ["protocol"], body, TABLES.bp_curves.notes + " Shaded: beyond a reading-rule threshold (dashed lines, from the rules of this protocol).");
  }

  function thresholdTable(thresholds) {
    const columns = [
      { key: "rule", label: "Rule", text: true },
      { key: "phase", label: "Phase", text: true },
      { key: "sbp_over", label: "SBP >" },
      { key: "dbp_over", label: "DBP >" },
      { key: "hr_over", label: "HR >" },
      { key: "spo2_under", label: "SpO2 <" },
      { key: "consecutive", label: "Readings in a row" },
      { key: "ctcae_version", label: "CTCAE", text: true },
    ];
    return el("details", {}, [el("summary", { text: "Thresholds of this protocol" }), dataTable(columns, thresholds), exportBar("rule_thresholds", TABLES.rule_thresholds.columns, () => thresholds.map((r) => TABLES.rule_thresholds.columns.map((c) => r[c])))]);
  }

  function shiftView() {
    const protocol = state.filters.protocol;
    const rows = rowsOf("bp_shift_table").filter((r) => r.protocol === protocol);
    const bands = ["<120/<80", "120-139/80-89", "140-159/90-99", "160-179/100-109", ">=180/>=110"];
    const width = 560;
    const cell = 80;
    const left = 120;
    const top = 28;
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${top + bands.length * 34 + 40}`, width: width, height: top + bands.length * 34 + 40, role: "img", "aria-label": "Shift table" });
    const max = Math.max(1, ...rows.map((r) => r.sessions || 0));
    svg.appendChild(svgEl("text", { x: left + (bands.length * cell) / 2, y: 12, "text-anchor": "middle" }, "peak band →"));
    bands.forEach((b, j) => svg.appendChild(svgEl("text", { x: left + j * cell + cell / 2, y: top - 4, "text-anchor": "middle" }, b)));
    bands.forEach((baseline, i) => {
      svg.appendChild(svgEl("text", { x: left - 6, y: top + i * 34 + 21, "text-anchor": "end" }, baseline));
      bands.forEach((peak, j) => {
        const found = rows.find((r) => r.baseline_band === baseline && r.peak_band === peak);
        const value = found ? found.sessions : 0;
        const opacity = value === null ? 0 : 0.1 + (0.8 * value) / max;
        const rect = svgEl("rect", {
          class: value === null ? "suppressed-band" : value > 0 ? "mark-cell" : null,
          x: left + j * cell + 1,
          y: top + i * 34 + 1,
          width: cell - 2,
          height: 32,
          fill: value === null ? null : `rgba(11, 98, 164, ${value ? opacity.toFixed(3) : 0.03})`,
          "data-value": value === null ? SUP : value,
        });
        rect.appendChild(svgEl("title", {}, `baseline ${baseline}, peak ${peak}: ${fmtCount(value)} sessions`));
        svg.appendChild(rect);
        svg.appendChild(svgEl("text", { class: "cell-text", x: left + j * cell + cell / 2, y: top + i * 34 + 21, "text-anchor": "middle" }, fmtCount(value)));
      });
    });
    svg.appendChild(svgEl("text", { x: 8, y: top + bands.length * 34 + 24 }, "baseline band ↓ (worse of SBP/DBP, mmHg)"));
    const body = [el("div", { class: "chart", id: "shift-chart" }, [svg])];
    body.push(exportBar("bp_shift_table", TABLES.bp_shift_table.columns, () => rows.map((r) => TABLES.bp_shift_table.columns.map((c) => (c === "sessions" ? fmtCount(r[c]) : r[c])))));
    return section("shift", "Baseline vs peak blood pressure", ["protocol"], body, TABLES.bp_shift_table.notes);
  }

  function cadssView() {
    const choice = chosenProtocol("cadss_by_infusion");
    const rows = rowsOf("cadss_by_infusion").filter((r) => r.protocol === choice.protocol);
    const orders = Array.from(new Set(rows.map((r) => r.infusion_order))).sort((a, b) => a - b);
    const labelOf = Object.fromEntries(rows.map((r) => [r.infusion_order, r.infusion_label]));
    const xTicks = orders.map((o) => [o, labelOf[o]]);
    const series = [["40min", ""], ["discharge", "alt"]];
    const ys = rows.flatMap((r) => [r.p75, r.p25, r.median]).concat([0, 4]);
    const layers = [{ type: "hline", y: 4, cls: "threshold", label: "CADSS > 4: dissociation" }];
    for (const [timepoint, cls] of series) {
      const pts = rows.filter((r) => r.timepoint === timepoint).sort((a, b) => a.infusion_order - b.infusion_order);
      layers.push({ type: "band", cls: cls, points: pts.map((p) => ({ x: p.infusion_order, lo: p.p25, hi: p.p75 })) });
      layers.push({ type: "line", cls: cls, points: pts.map((p) => ({ x: p.infusion_order, y: p.median })) });
      layers.push({ type: "marks", cls: cls, points: pts.map((p) => ({ x: p.infusion_order, y: p.median, title: `infusion ${p.infusion_label}, ${timepoint}: median ${fmtNum(p.median, 1)} (${fmtCount(p.ratings)} ratings)` })) });
    }
    const over = rows.filter((r) => r.timepoint === "40min").sort((a, b) => a.infusion_order - b.infusion_order);
    const body = [choice.note ? el("div", { class: "notes", text: choice.note }) : null];
    if (!rows.length) body.push(empty("No CADSS ratings for this protocol."));
    else {
      body.push(
        el("div", { class: "row" }, [
          el("div", { class: "chart", id: "cadss-chart" }, [
            el("h3", { text: "CADSS median and interquartile range (blue: 40 min, orange: discharge)" }),
            chart({ x: [Math.min(...orders) - 0.5, Math.max(...orders) + 0.5], y: extent(ys, 0.05), xLabel: "infusion number", yLabel: "CADSS total", xTicks: xTicks, layers: layers }),
          ]),
          el("div", { class: "chart" }, [
            el("h3", { text: "% of ratings with CADSS > 4 at 40 min" }),
            barChart(over.map((r) => ({ label: "infusion " + r.infusion_label, value: r.pct_over_threshold, text: fmtNum(r.pct_over_threshold, 0) + " %" })), { left: 90, width: 420, max: 100, axisLabel: "%" }),
          ]),
        ]),
      );
    }
    body.push(exportBar("cadss_by_infusion", TABLES.cadss_by_infusion.columns, () => rows.map((r) => TABLES.cadss_by_infusion.columns.map((c) => (TABLES.cadss_by_infusion.counts.includes(c) ? fmtCount(r[c]) : r[c])))));
    return section("cadss", `Dissociation by infusion number: ${humanize(choice.protocol || "")}`, ["protocol"], body, TABLES.cadss_by_infusion.notes);
  }

  function phq9View() {
    const choice = chosenProtocol("phq9_trajectories");
    const rows = rowsOf("phq9_trajectories").filter((r) => r.protocol === choice.protocol);
    const classes = Array.from(new Set(rows.map((r) => r.outcome_class))).sort();
    const styles = ["", "alt", "third", "fourth", "fifth"];
    const layers = [5, 10, 15, 20].map((y) => ({ type: "hline", y: y, cls: "median", label: String(y) }));
    classes.forEach((cls, i) => {
      const pts = rows.filter((r) => r.outcome_class === cls).sort((a, b) => a.infusion_order - b.infusion_order);
      layers.push({ type: "band", cls: styles[i % styles.length], points: pts.map((p) => ({ x: p.infusion_order, lo: p.p25, hi: p.p75 })) });
      layers.push({ type: "line", cls: styles[i % styles.length], points: pts.map((p) => ({ x: p.infusion_order, y: p.median })) });
      layers.push({ type: "marks", cls: styles[i % styles.length], points: pts.map((p) => ({ x: p.infusion_order, y: p.median, title: `${humanize(cls)}, before infusion ${p.infusion_label}: median ${fmtNum(p.median, 1)} (${fmtCount(p.patients)} patients)` })) });
    });
    const orders = rows.map((r) => r.infusion_order);
    const body = [choice.note ? el("div", { class: "notes", text: choice.note }) : null];
    if (rows.length) {
      const legend = classes.map((c, i) => `${["blue", "orange", "green", "purple", "grey"][i % 5]}: ${humanize(c)}`).join(" · ");
      body.push(
        el("div", { class: "chart", id: "phq9-chart" }, [
          el("h3", { text: "PHQ-9 total (median, interquartile range) by infusion number — " + legend }),
          chart({ x: [Math.min(...orders) - 0.5, Math.max(...orders) + 0.5], y: [0, 27], xLabel: "infusion number", yLabel: "PHQ-9 total", layers: layers }),
        ]),
      );
    } else body.push(empty("No PHQ-9 responses for this protocol."));
    const outcomes = matching("phq9_outcomes", ["clinic_id", "protocol"]);
    const columns = [
      { key: "readout", label: "Read-out", text: true, format: (v) => humanize(v) },
      { key: "patients_with_baseline", label: "Patients with a baseline", count: true },
      { key: "patients_assessed", label: "Assessed", count: true },
      { key: "responders", label: "Responders", count: true },
      { key: "pct_response", label: "% response", format: (v) => fmtNum(v, 1) },
      { key: "remitters", label: "Remitters", count: true },
      { key: "pct_remission", label: "% remission", format: (v) => fmtNum(v, 1) },
      { key: "item9_worsened", label: "Item 9 worse than baseline", count: true },
    ];
    body.push(el("h3", { text: "Response and remission (" + (state.filters.clinic_id === "all" ? "all clinics" : state.filters.clinic_id) + ", " + humanize(state.filters.protocol === "all" ? "all protocols" : state.filters.protocol) + ")" }));
    body.push(outcomes.length ? dataTable(columns, outcomes) : empty("No PHQ-9 outcomes for this selection."));
    body.push(exportBar("phq9_outcomes", TABLES.phq9_outcomes.columns, () => outcomes.map((r) => TABLES.phq9_outcomes.columns.map((c) => (TABLES.phq9_outcomes.counts.includes(c) ? fmtCount(r[c]) : r[c])))));
    return section("phq9", "Efficacy context: PHQ-9", ["clinic_id", "protocol"], body, TABLES.phq9_outcomes.notes + " " + TABLES.phq9_trajectories.notes);
  }

  function suicidalityView() {
    const rows = matching("suicidality_flags", ["clinic_id", "protocol"]);
    const columns = [
      { key: "category_label", label: "Flag", text: true },
      { key: "flags", label: "Screens", count: true },
      { key: "patients", label: "Patients", count: true },
    ];
    const body = [rows.length ? dataTable(columns, rows) : empty("No suicidality flags for this selection.")];
    body.push(exportBar("suicidality_flags", TABLES.suicidality_flags.columns, () => rows.map((r) => TABLES.suicidality_flags.columns.map((c) => (TABLES.suicidality_flags.counts.includes(c) ? fmtCount(r[c]) : r[c])))));
    return section("suicidality", "Suicidality flags", ["clinic_id", "protocol"], body, TABLES.suicidality_flags.notes);
  }

  function breachView() {
    const rows = matching("breach_summary", ["clinic_id", "protocol", "infusion_bucket"]);
    const columns = [
      { key: "rule", label: "Reading rule", text: true, format: (v) => humanize(v) },
      { key: "sessions", label: "Sessions", count: true },
      { key: "sessions_with_breach", label: "With a breach", count: true },
      { key: "pct_sessions", label: "%", format: (v) => fmtNum(v, 1) },
      { key: "breaches_not_recorded", label: "Not recorded by staff", count: true },
    ];
    const body = [
      el("div", { class: "chart", id: "breach-chart" }, [barChart(rows.map((r) => ({ label: humanize(r.rule), value: r.pct_sessions, text: fmtNum(r.pct_sessions, 1) + " %" })), { left: 170, axisLabel: "% of sessions with a breach" })]),
      dataTable(columns, rows),
      exportBar("breach_summary", TABLES.breach_summary.columns, () => rows.map((r) => TABLES.breach_summary.columns.map((c) => (TABLES.breach_summary.counts.includes(c) ? fmtCount(r[c]) : r[c])))),
    ];
    return section("breaches", "Reading-rule breaches", ["clinic_id", "protocol", "infusion_bucket"], body, TABLES.breach_summary.notes);
  }

  function monitoringView() {
    const rows = matching("monitoring_compliance", ["clinic_id", "protocol", "infusion_bucket"]);
    const columns = [
      { key: "check", label: "Check", text: true, format: (v) => humanize(v) },
      { key: "sessions_evaluated", label: "Sessions evaluated", count: true },
      { key: "sessions_passed", label: "Passed", count: true },
      { key: "pct_passed", label: "% passed", format: (v) => fmtNum(v, 1) },
    ];
    const discharge = rowsOf("discharge_readiness").filter(
      (r) => ["clinic_id", "protocol"].every((k) => state.filters[k] === "all" || r[k] === state.filters[k]),
    );
    const shownDischarge = discharge.slice(0, 60);
    const dColumns = [
      { key: "clinic_id", label: "Clinic", text: true },
      { key: "protocol", label: "Protocol", text: true, format: (v) => humanize(v) },
      { key: "measure", label: "Measure", text: true, format: (v) => humanize(v) },
      { key: "sessions", label: "Sessions", count: true },
      { key: "median", label: "Median", format: (v) => fmtNum(v, 0) },
      { key: "p10", label: "p10", format: (v) => fmtNum(v, 0) },
      { key: "p90", label: "p90", format: (v) => fmtNum(v, 0) },
      { key: "sessions_never_ready", label: "Never ready", count: true },
    ];
    const body = [
      el("div", { class: "chart", id: "monitoring-chart" }, [barChart(rows.map((r) => ({ label: humanize(r.check), value: r.pct_passed, text: fmtNum(r.pct_passed, 1) + " %" })), { left: 200, max: 100, axisLabel: "% of sessions passing the check" })]),
      dataTable(columns, rows),
      exportBar("monitoring_compliance", TABLES.monitoring_compliance.columns, () => rows.map((r) => TABLES.monitoring_compliance.columns.map((c) => (TABLES.monitoring_compliance.counts.includes(c) ? fmtCount(r[c]) : r[c])))),
      el("h3", { text: "Discharge readiness (minutes)" }),
      discharge.length ? dataTable(dColumns, shownDischarge) : empty("No discharge data for this selection."),
      discharge.length > shownDischarge.length ? el("div", { class: "notes", text: "First 60 rows: choose a clinic or a protocol, or see the CSV." }) : null,
      exportBar("discharge_readiness", TABLES.discharge_readiness.columns, () => discharge.map((r) => TABLES.discharge_readiness.columns.map((c) => (TABLES.discharge_readiness.counts.includes(c) ? fmtCount(r[c]) : r[c])))),
    ];
    return section("monitoring", "Monitoring compliance and discharge readiness", ["clinic_id", "protocol", "infusion_bucket"], body, TABLES.monitoring_compliance.notes + " " + TABLES.discharge_readiness.notes);
  }

  function listingView() {
    const f = state.filters;
    const keys = ["clinic_id", "protocol", "infusion_bucket", "severity", "relatedness"];
    let rows = rowsOf("serious_event_listing").filter((r) => keys.every((k) => f[k] === "all" || r[k] === f[k]));
    if (f.seriousness !== "all" && f.seriousness !== "serious") rows = [];
    const shown = rows.slice(0, 200);
    const columns = [
      { key: "patient_token", label: "Patient (token)", text: true },
      { key: "clinic_id", label: "Clinic", text: true },
      { key: "protocol", label: "Protocol", text: true, format: (v) => humanize(v) },
      { key: "infusion_number", label: "Infusion" },
      { key: "course_day", label: "Course day" },
      { key: "onset_minutes_from_start", label: "Onset (min)", format: (v) => fmtNum(v, 0) },
      { key: "term", label: "Event", text: true },
      { key: "severity", label: "Severity", text: true },
      { key: "seriousness_criteria", label: "Seriousness", text: true, format: (v) => humanize(v) },
      { key: "relatedness", label: "Relatedness", text: true, format: (v) => humanize(v) },
      { key: "action_taken", label: "Action", text: true, format: (v) => humanize(v) },
      { key: "outcome", label: "Outcome", text: true, format: (v) => humanize(v) },
    ];
    const body = [rows.length ? dataTable(columns, shown) : empty("No serious adverse events match these filters.")];
    if (rows.length > shown.length) body.push(el("div", { class: "notes", text: "First 200 rows: narrow the filters or see the CSV." }));
    body.push(exportBar("serious_event_listing", TABLES.serious_event_listing.columns, () => rows.map((r) => TABLES.serious_event_listing.columns.map((c) => r[c]))));
    return section("listing", "Serious adverse events (listing)", ["clinic_id", "protocol", "infusion_bucket", "severity", "seriousness", "relatedness"], body, TABLES.serious_event_listing.notes);
  }

  // ---------------------------------------------------------------------------------------------- page

  const VIEWS = [
    ["incidence", "Incidence", incidenceView],
    ["listing", "Serious events", listingView],
    ["spc", "SPC", spcView],
    ["funnel", "Funnel", funnelView],
    ["bp-curves-view", "Vital signs", bpCurvesView],
    ["shift", "BP shift", shiftView],
    ["breaches", "Breaches", breachView],
    ["cadss", "Dissociation", cadssView],
    ["suicidality", "Suicidality", suicidalityView],
    ["phq9", "PHQ-9", phq9View],
    ["monitoring", "Monitoring", monitoringView],
  ];

  function render() {
    const app = document.getElementById("app");
    const scrollY = window.scrollY;
    app.replaceChildren(
      renderHeader(),
      renderQuality(),
      renderDisclaimers(),
      renderFilters(),
      el("nav", { class: "toc" }, VIEWS.map(([id, label]) => el("a", { href: "#" + id, text: label }))),
      ...VIEWS.map(([, , view]) => view()),
      el("footer", {}, [
        "Built from the safety marts (publication audience only). Metric definitions: docs/safety-metrics.md and docs/dashboard.md. Every table is also in the csv/ folder, with the same suppression.",
      ]),
    );
    window.scrollTo(0, scrollY);
    document.body.setAttribute("data-rendered", JSON.stringify(state.filters));
  }

  render();
})();
