//! A run as one self-contained HTML page: a lane per node over simulated time.
//!
//! `raft-sim run --seed S --html FILE` and `raft-sim replay FILE --html H` write it. The page
//! has no external resource (inline CSS, inline script, SVG drawn by the script from the run's
//! timeline embedded as JSON), so it opens from a file, a CI artifact or an e-mail.
//!
//! What it shows, read from the run's readable trace ([`crate::timeline`]):
//! 1. a lane per node slot, shaded by role (follower, pre-candidate, candidate, leader) with
//!    the term written where it changes;
//! 2. every message as an arrow from the sender's lane at its send time to the receiver's
//!    lane at its delivery time; messages never delivered end in a cross; a checkbox per
//!    message type hides or shows that type;
//! 3. faults shaded on the lanes they hit: crashes until the node starts again, pauses until
//!    they resume, partitions and clogs for their duration;
//! 4. a lane per client with each operation from its call to its answer, the answer as its
//!    label;
//! 5. applied indexes (`a7`) on each lane and the commit index leaders advertise (`c7`);
//! 6. the violation: a red line at its time across every lane and its property and detail
//!    in the header (`#violation`).
//!
//! Every element has a tooltip with its trace line. The script draws a few thousand events
//! in well under a second; zoom (pixels per simulated millisecond) redraws.
//!
//! Invariants:
//! 1. The page embeds the timeline as JSON with every string escaped for a `<script>` block
//!    (no `</script>` can close it early, no raw control characters).

use crate::RunReport;
use crate::timeline::{self, Kind};
use std::fmt::Write as _;

/// The page of a run that was traced (`Settings::trace`).
///
/// # Panics
/// If `report` has no readable trace.
pub fn page(report: &RunReport, title: &str) -> String {
    let trace = report
        .trace
        .as_deref()
        .expect("an HTML page needs the readable trace (Settings::trace)");
    let items = timeline::parse(trace);
    let mut json = String::new();
    json.push('[');
    let mut first = true;
    for it in &items {
        let t = it.at_us;
        let entry = match &it.kind {
            Kind::Send {
                from,
                to,
                term,
                msg,
                desc,
                delivered_us,
            } => format!(
                "[\"s\",{t},{from},{to},{term},{},{},{}]",
                js(msg),
                js(desc),
                delivered_us.map_or("null".into(), |d| d.to_string())
            ),
            Kind::Deliver { .. } => continue,
            Kind::Role { node, role, term } => {
                format!("[\"r\",{t},{node},{},{term}]", js(role))
            }
            Kind::Call { client, seq, what } => {
                format!("[\"c\",{t},{client},{seq},{}]", js(what))
            }
            Kind::Answer { client, seq, reply } => {
                format!("[\"a\",{t},{client},{seq},{}]", js(reply))
            }
            Kind::Apply { node, first, last } => {
                format!("[\"p\",{t},{node},{first},{last}]")
            }
            Kind::Fault { nodes, duration_us } => format!(
                "[\"f\",{t},[{}],{},{}]",
                nodes
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                duration_us.map_or("null".into(), |d| d.to_string()),
                js(&it.text)
            ),
            Kind::Node { node } => format!("[\"n\",{t},{node},{}]", js(&it.text)),
            Kind::Other => format!("[\"o\",{t},{}]", js(&it.text)),
        };
        if !first {
            json.push(',');
        }
        first = false;
        json.push_str(&entry);
    }
    json.push(']');
    let violation = match &report.violation {
        Some(v) => format!(
            "{{\"t\":{},\"property\":{},\"detail\":{}}}",
            v.at_us,
            js(&v.property.to_string()),
            js(&v.detail)
        ),
        None => "null".into(),
    };
    let data = format!(
        "{{\"title\":{},\"nodes\":{},\"clients\":{},\"end\":{},\"events\":{},\"hash\":\"{:016x}\",\
         \"options\":{},\"violation\":{violation},\"items\":{json}}}",
        js(title),
        report.options.slots(),
        report.options.clients,
        report.sim_us,
        report.events,
        report.trace_hash,
        js(&report.options.to_string()),
    );
    let mut out = String::with_capacity(data.len() + TEMPLATE.len() + 64);
    let _ = write!(
        out,
        "{}",
        TEMPLATE
            .replace("__TITLE__", &escape_html(title))
            .replace("__DATA__", &data)
    );
    out
}

/// A JSON string literal that is also safe inside `<script>`.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '<' => o.push_str("\\u003c"),
            '>' => o.push_str("\\u003e"),
            '&' => o.push_str("\\u0026"),
            '\u{2028}' => o.push_str("\\u2028"),
            '\u{2029}' => o.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const TEMPLATE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 10px 16px; background: #fff; border-bottom: 1px solid #ddd; }
h1 { font-size: 16px; margin: 0 0 4px 0; }
#violation { margin: 6px 0; padding: 6px 10px; border-left: 4px solid #c00; background: #fee; }
#violation.none { border-color: #2a2; background: #efe; }
#controls { margin: 6px 0; }
#controls label { margin-right: 10px; white-space: nowrap; }
#wrap { overflow: auto; background: #fff; border-bottom: 1px solid #ddd; }
svg text { font: 11px monospace; }
.lane-bg { fill: #f4f4f4; }
.lane-label { font-weight: bold; }
.role-follower { fill: #e8e8e8; }
.role-pre-candidate { fill: #fff3b0; }
.role-candidate { fill: #ffd08a; }
.role-leader { fill: #9be39b; }
.m { stroke: #4a6fa5; stroke-width: 1; fill: none; opacity: .75; }
.m.lost { stroke: #c33; stroke-dasharray: 3 2; }
.m.flight { stroke-dasharray: 1 2; }
.answer { fill: #333; }
.m-MsgApp, .m-MsgAppResp { stroke: #4a6fa5; }
.m-MsgVote, .m-MsgVoteResp, .m-MsgPreVote, .m-MsgPreVoteResp { stroke: #b5651d; }
.m-MsgHeartbeat, .m-MsgHeartbeatResp { stroke: #999; }
.m-MsgSnap { stroke: #7b3fa0; stroke-width: 2; }
.crash { fill: #c00; opacity: .25; }
.pause { fill: #888; opacity: .3; }
.cut { fill: url(#hatch); opacity: .8; }
.op { stroke: #333; stroke-width: 3; }
.op.open { stroke: #c90; stroke-dasharray: 4 3; }
.apply { fill: #060; }
.commit { fill: #036; }
.term { fill: #333; }
#violation-line { stroke: #c00; stroke-width: 2; }
details { padding: 8px 16px; }
pre { font: 11px monospace; max-height: 400px; overflow: auto; background: #fff; border: 1px solid #ddd; padding: 6px; }
</style>
</head>
<body>
<header>
<h1 id="title"></h1>
<div id="summary"></div>
<div id="violation"></div>
<div id="controls">zoom <select id="zoom"></select> px per simulated ms &nbsp; messages: <span id="filters"></span></div>
</header>
<div id="wrap"><svg id="chart" xmlns="http://www.w3.org/2000/svg"></svg></div>
<details><summary>options</summary><pre id="options"></pre></details>
<details><summary>trace</summary><pre id="trace"></pre></details>
<script>
"use strict";
const D = __DATA__;
const NS = "http://www.w3.org/2000/svg";
const LEFT = 60, TOP = 24, LANE = 34, GAP = 6, CLANE = 14;
const hidden = new Set();
function el(tag, attrs, parent, tip) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (tip) { const t = document.createElementNS(NS, "title"); t.textContent = tip; e.appendChild(t); }
  if (parent) parent.appendChild(e);
  return e;
}
function ms(t) { return (t / 1e6).toFixed(6) + "s"; }
function laneY(n) { return TOP + (n - 1) * (LANE + GAP); }
function clientY(c) { return TOP + D.nodes * (LANE + GAP) + 10 + c * CLANE; }
function render() {
  const px = parseFloat(document.getElementById("zoom").value);
  const x = t => LEFT + t / 1000 * px;
  const svg = document.getElementById("chart");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = Math.ceil(x(D.end)) + 80;
  const height = clientY(D.clients) + 20;
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  const defs = el("defs", {}, svg);
  const pat = el("pattern", {id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)"}, defs);
  el("rect", {width: 3, height: 6, fill: "#d66"}, pat);
  // time axis
  const axis = el("g", {class: "axis"}, svg);
  const stepMs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000].find(s => s * px >= 70) || 20000;
  for (let t = 0; t <= D.end / 1000; t += stepMs) {
    el("line", {x1: x(t * 1000), x2: x(t * 1000), y1: TOP - 6, y2: height, stroke: "#eee"}, axis);
    el("text", {x: x(t * 1000) + 2, y: TOP - 10}, axis).textContent = (t / 1000).toFixed(3) + "s";
  }
  // lanes and roles
  const lanes = el("g", {id: "lanes"}, svg);
  const roleSince = {};
  for (let n = 1; n <= D.nodes; n++) {
    const g = el("g", {class: "lane", "data-node": n}, lanes);
    el("rect", {class: "lane-bg", x: LEFT, y: laneY(n), width: width - LEFT, height: LANE}, g);
    el("text", {class: "lane-label", x: 8, y: laneY(n) + LANE / 2 + 4}, g).textContent = "n" + n;
    roleSince[n] = null;
  }
  const roleG = el("g", {id: "roles"}, svg);
  const closeRole = (n, t) => {
    const r = roleSince[n];
    if (!r) return;
    el("rect", {class: "role-" + r.role, x: x(r.t), y: laneY(n) + 2, width: Math.max(1, x(t) - x(r.t)), height: LANE - 4}, roleG,
       `n${n} ${r.role} in term ${r.term} from ${ms(r.t)} to ${ms(t)}`);
  };
  const faults = el("g", {id: "faults"}, svg);
  const msgs = el("g", {id: "messages"}, svg);
  const marks = el("g", {id: "marks"}, svg);
  const ops = el("g", {id: "ops"}, svg);
  const down = {}, paused = {}, calls = {};
  const commitSeen = {};
  // A label is drawn only if it does not overlap the previous one of its kind on its lane
  // (its tooltip-bearing mark is kept either way).
  const lastLabel = {};
  const roomFor = (key, at) => {
    if (lastLabel[key] !== undefined && at - lastLabel[key] < 22) return false;
    lastLabel[key] = at;
    return true;
  };
  for (const it of D.items) {
    const k = it[0], t = it[1];
    if (k === "r") {
      const [, , n, role, term] = it;
      closeRole(n, t);
      roleSince[n] = {t, role, term};
      if (roomFor("r" + n, x(t))) el("text", {class: "term", x: x(t) + 2, y: laneY(n) + 11}, marks, `n${n} becomes ${role} in term ${term} at ${ms(t)}`).textContent =
        (role === "leader" ? "L" : role === "candidate" ? "C" : role === "pre-candidate" ? "P" : "F") + term;
    } else if (k === "s") {
      const [, , from, to, term, msg, desc, dt] = it;
      if (from > D.nodes || to > D.nodes) continue;
      const y1 = laneY(from) + LANE / 2, y2 = laneY(to) + LANE / 2;
      const tip = `${ms(t)} n${from}@${term} → n${to} ${desc}` + (dt === null ? " (never delivered)" : ` delivered ${ms(dt)}`);
      if (dt === null && D.end - t < 50000) {
        el("line", {class: `m m-${msg} flight`, x1: x(t), y1, x2: x(t) + 10, y2: y1 + (y2 - y1) / 3}, msgs, tip + " (in flight at the end)");
      } else if (dt === null) {
        const xe = x(t) + 10, ye = y1 + (y2 - y1) / 3;
        el("line", {class: `m m-${msg} lost`, x1: x(t), y1, x2: xe, y2: ye}, msgs, tip);
        el("path", {class: `m m-${msg} lost`, d: `M${xe - 3},${ye - 3}l6,6m0,-6l-6,6`}, msgs, tip);
      } else {
        el("line", {class: `m m-${msg}`, x1: x(t), y1, x2: x(dt), y2, "marker-end": ""}, msgs, tip);
      }
      const c = / c(\d+)/.exec(desc);
      if (c && (msg === "MsgApp" || msg === "MsgHeartbeat")) {
        const v = parseInt(c[1], 10);
        if (commitSeen[from] === undefined || v > commitSeen[from]) {
          commitSeen[from] = v;
          if (roomFor("c" + from, x(t))) el("text", {class: "commit", x: x(t) + 2, y: laneY(from) + LANE - 3}, marks, `n${from} advertises commit ${v} at ${ms(t)}`).textContent = "c" + v;
        }
      }
    } else if (k === "p") {
      const [, , n, first, last] = it;
      if (roomFor("a" + n, x(t))) el("text", {class: "apply", x: x(t) + 2, y: laneY(n) + LANE - 12}, marks, `n${n} applies ${first}..=${last} at ${ms(t)}`).textContent = "a" + last;
    } else if (k === "f") {
      const [, , nodes, dur, text] = it;
      const what = text.replace(/^nemesis: /, "");
      if (what.startsWith("crash")) { for (const n of nodes) down[n] = {t, text}; }
      else if (what.startsWith("pause")) { for (const n of nodes) paused[n] = {t, text}; }
      else if (what.startsWith("resume")) {
        for (const n of nodes) if (paused[n]) {
          el("rect", {class: "pause", x: x(paused[n].t), y: laneY(n), width: Math.max(2, x(t) - x(paused[n].t)), height: LANE}, faults, paused[n].text);
          delete paused[n];
        }
      } else if (dur !== null) {
        for (const n of nodes) {
          if (n > D.nodes) continue;
          el("rect", {class: "cut", x: x(t), y: laneY(n) + LANE - 8, width: Math.max(2, dur / 1000 * px), height: 8}, faults, `${ms(t)} ${what}`);
        }
      }
      el("text", {class: "fault", x: x(t) + 2, y: TOP - 1, fill: "#900"}, marks, `${ms(t)} ${what}`).textContent = "⚡";
    } else if (k === "n") {
      const [, , n, text] = it;
      if (down[n] && / starts /.test(text)) {
        el("rect", {class: "crash", x: x(down[n].t), y: laneY(n), width: Math.max(2, x(t) - x(down[n].t)), height: LANE}, faults, down[n].text);
        delete down[n];
      }
    } else if (k === "c") {
      const [, , c, seq, what] = it;
      calls[c + "/" + seq] = {t, what};
    } else if (k === "a") {
      const [, , c, seq, reply] = it;
      const call = calls[c + "/" + seq];
      el("circle", {class: "answer", cx: x(t), cy: clientY(c) + 6, r: 2}, ops, `${ms(t)} client ${c} op ${seq}: ${reply}`);
      if (call && reply.startsWith("Result")) {
        el("line", {class: "op", x1: x(call.t), x2: Math.max(x(t), x(call.t) + 2), y1: clientY(c) + 6, y2: clientY(c) + 6}, ops,
           `client ${c} op ${seq} ${call.what}: called ${ms(call.t)}, answered ${ms(t)}: ${reply}`);
        delete calls[c + "/" + seq];
      }
    }
  }
  for (let n = 1; n <= D.nodes; n++) {
    closeRole(n, D.end);
    if (down[n]) el("rect", {class: "crash", x: x(down[n].t), y: laneY(n), width: Math.max(2, x(D.end) - x(down[n].t)), height: LANE}, faults, down[n].text);
    if (paused[n]) el("rect", {class: "pause", x: x(paused[n].t), y: laneY(n), width: Math.max(2, x(D.end) - x(paused[n].t)), height: LANE}, faults, paused[n].text);
  }
  for (const key in calls) {
    const [c, seq] = key.split("/").map(Number);
    el("line", {class: "op open", x1: x(calls[key].t), x2: x(D.end), y1: clientY(c) + 6, y2: clientY(c) + 6}, ops,
       `client ${c} op ${seq} ${calls[key].what}: called ${ms(calls[key].t)}, no answer`);
  }
  for (let c = 0; c < D.clients; c++) el("text", {x: 8, y: clientY(c) + 10}, ops).textContent = "c" + c;
  roleG.parentNode.insertBefore(roleG, faults);
  if (D.violation) {
    el("line", {id: "violation-line", x1: x(D.violation.t), x2: x(D.violation.t), y1: TOP - 16, y2: height}, svg,
       `${D.violation.property} at ${ms(D.violation.t)}: ${D.violation.detail}`);
  }
  applyFilters();
  document.body.dataset.lanes = String(svg.querySelectorAll("g.lane").length);
  document.body.dataset.rendered = "yes";
}
function applyFilters() {
  for (const e of document.querySelectorAll("#messages .m")) {
    const kind = [...e.classList].find(c => c.startsWith("m-"));
    e.style.display = hidden.has(kind) ? "none" : "";
  }
}
function init() {
  document.getElementById("title").textContent = D.title;
  document.getElementById("summary").textContent =
    `${D.nodes} node slots, ${D.clients} clients, ${D.events} events over ${ms(D.end)}, trace hash ${D.hash}`;
  const v = document.getElementById("violation");
  if (D.violation) v.textContent = `VIOLATION at ${ms(D.violation.t)}: ${D.violation.property} — ${D.violation.detail}`;
  else { v.textContent = "no violation"; v.className = "none"; }
  document.getElementById("options").textContent = D.options;
  document.getElementById("trace").textContent = D.items.map(i => ms(i[1]) + " " + JSON.stringify(i.slice(2))).join("\n");
  const zoom = document.getElementById("zoom");
  const fit = Math.min(50, Math.max(0.05, 1400 / Math.max(1, D.end / 1000)));
  const levels = [0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 50];
  let best = levels[0];
  for (const l of levels) if (l <= fit) best = l;
  for (const l of levels) { const o = document.createElement("option"); o.value = l; o.textContent = l; if (l === best) o.selected = true; zoom.appendChild(o); }
  zoom.addEventListener("change", render);
  const kinds = [...new Set(D.items.filter(i => i[0] === "s").map(i => i[5]))].sort();
  const f = document.getElementById("filters");
  for (const kind of kinds) {
    const l = document.createElement("label");
    const cb = document.createElement("input");
    cb.type = "checkbox"; cb.checked = true; cb.dataset.kind = kind;
    cb.addEventListener("change", () => { if (cb.checked) hidden.delete("m-" + kind); else hidden.add("m-" + kind); applyFilters(); });
    l.appendChild(cb); l.appendChild(document.createTextNode(" " + kind));
    f.appendChild(l);
  }
  render();
}
init();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cannot_close_the_script_block() {
        assert_eq!(
            js("a</script>\"\n"),
            "\"a\\u003c/script\\u003e\\\"\\u000a\""
        );
    }

    #[test]
    fn a_page_embeds_the_lanes_and_the_violation() {
        let settings = crate::Settings {
            trace: true,
            bugs: crate::options::PlantedBugs {
                ack_before_durable: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = crate::run(0, &settings);
        let v = r.violation.as_ref().expect("the planted bug is caught");
        let p = page(&r, "seed 0");
        assert!(p.contains(&format!("\"nodes\":{}", r.options.slots())));
        assert!(p.contains(&js(&v.property.to_string())));
        // The only URL is the SVG namespace name, which is never fetched.
        assert!(p.matches("http").count() == p.matches("http://www.w3.org/2000/svg").count());
        assert!(
            !p.contains("<script src") && !p.contains("<link"),
            "no external resources"
        );
    }
}
