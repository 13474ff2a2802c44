// The littleflow web console: one page, routed by the URL's hash, talking to the API
// it is served by. User text only ever reaches the page as text nodes (never as HTML);
// graphs come from the server as SVG with every label escaped.

const API = new URL("..", location.href);  // the console lives at /console/ beside the API
const STATES = ["running", "finished", "failed", "terminated"];
const PAGE = 50;
const STRUCTURE = ["start", "end", "subflow-start", "subflow-end",  // drawn, not listed
                   "choice", "choice-end", "repeat", "while", "loop-end"];
const TOKEN = "littleflow-token";
const DRAFT = "littleflow-draft";  // what "Run again" hands to the new-workflow page

const $ = (selector, root = document) => root.querySelector(selector);

// -- small DOM helpers -----------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...present(children));
  return element;
}

const present = (children) => children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);

// Replace what `element` holds: nested lists flattened, null, undefined and false left out.
function put(element, ...children) {
  element.replaceChildren(...present(children));
}

const badge = (status) => h("span", { class: `badge status-${status}` }, status);

// A time: local, the time of day alone when it is today, else the date and the minute
// (2026-11-30 14:02); in full, and in UTC, on hover.
const two = (n) => String(n).padStart(2, "0");

function moment(seconds) {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  const day = `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
  return h("time", { datetime: date.toISOString(), title: `${date.toLocaleString()} (${date.toISOString()})` },
    today ? date.toLocaleTimeString() : `${day} ${two(date.getHours())}:${two(date.getMinutes())}`);
}

function took(start, end) {
  if (!start) return "";
  const s = Math.max(0, (end || Date.now() / 1000) - start);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

const pretty = (value) => (value === undefined ? "" : JSON.stringify(value, null, 2));

function brief(value, limit = 60) {
  if (value === null || value === undefined) return "";
  const text = JSON.stringify(value);
  return text.length > limit ? text.slice(0, limit - 1) + "…" : text;
}

function toast(message, kind = "error") {
  const box = $("#toast");
  box.textContent = message;
  box.className = `toast ${kind}`;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 3000);
}

function confirmAction(title, text, verb) {
  const dialog = $("#confirm");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-text", dialog).textContent = text;
  $("#confirm-ok", dialog).textContent = verb;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// -- the API ---------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// The address `littleflow serve` prints carries its token (#token=…): kept for this tab, and
// taken out of the address bar and the history at once.
const given = new URLSearchParams(location.hash.slice(1)).get("token");
if (given) {
  sessionStorage.setItem(TOKEN, given);
  history.replaceState(null, "", `${location.pathname}${location.search}#/`);
}

const session = {
  token: sessionStorage.getItem(TOKEN) || localStorage.getItem(TOKEN),
  scope: null,
  auth: false,
  save(token, keep) {
    this.token = token;
    sessionStorage.removeItem(TOKEN);
    localStorage.removeItem(TOKEN);
    if (token) (keep ? localStorage : sessionStorage).setItem(TOKEN, token);
  },
};

async function request(path, { method = "GET", body, headers = {}, signal, token = session.token } = {}) {
  const options = { method, signal, headers: { Accept: "application/json", ...headers } };
  if (token) options.headers.Authorization = `Bearer ${token}`;
  if (body instanceof FormData) options.body = body;  // (the browser sets its multipart type)
  else if (body !== undefined) {
    options.body = typeof body === "string" ? body : JSON.stringify(body);
    options.headers["Content-Type"] ??= "application/json";
  }
  let response;
  try {
    response = await fetch(new URL(path, API), options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "Cannot reach the littleflow API", detail: error.message });
  }
  if (response.ok) return response;
  let problem;
  try {
    problem = await response.json();
  } catch {
    problem = { title: `HTTP ${response.status}`, detail: response.statusText };
  }
  const error = new ApiError(response.status, problem);
  if (response.status === 401 && token === session.token) signIn(error);
  throw error;
}

// JSON.parse keeping integers past 2^53 as sent, where the browser can (JSON.rawJSON).
const exact = typeof JSON.rawJSON === "function"
  ? (key, value, context) => (typeof value === "number" && !Number.isSafeInteger(value)
    && /^-?\d+$/.test(context?.source ?? "") ? JSON.rawJSON(context.source) : value)
  : undefined;
const parse = (text) => JSON.parse(text, exact);
const json = async (path, options) => parse(await (await request(path, options)).text());

// Server-Sent Events over fetch (EventSource cannot send a bearer token): reconnects with
// Last-Event-ID until `signal` aborts, and when the server falls silent (it sends a comment
// at least every 15 s). `onOpen` runs on every (re)connection.
const SILENCE = 40000;

async function listen(path, onEvent, signal, onOpen = null) {
  let lastId = null;
  let delay = 1000;
  live(false);
  while (!signal.aborted) {
    const attempt = new AbortController();
    const abort = () => attempt.abort();
    signal.addEventListener("abort", abort);
    let watchdog = setTimeout(abort, SILENCE);
    let reader = null;
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await request(path, { headers, signal: attempt.signal });
      live(true);
      onOpen?.();
      reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(watchdog);
        watchdog = setTimeout(abort, SILENCE);
        delay = 1000;
        buffer += value;
        const whole = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;  // (half a CRLF waits)
        const blocks = buffer.slice(0, whole).replace(/\r\n?/g, "\n").split("\n\n");
        buffer = blocks.pop() + buffer.slice(whole);
        for (const block of blocks) {
          const message = parseEvent(block);
          if (message.id !== null) lastId = message.id;
          if (message.data) onEvent(message.event, parse(message.data));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error.status === 401 || error.status === 404) { live(false); return; }
      if (!(error instanceof ApiError) && error.name !== "AbortError") console.error("event stream:", error);
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", abort);
      reader?.cancel().catch(() => {});
    }
    if (signal.aborted) return;
    live(false);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

// One event of a text/event-stream: its lines of `field: value` (comments start with ':').
function parseEvent(block) {
  const message = { event: "message", data: "", id: null };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") message.event = value;
    else if (field === "data") message.data += (message.data ? "\n" : "") + value;
    else if (field === "id") message.id = value;
  }
  return message;
}

// The live-updates mark: on, reconnecting, or hidden (null: this page has no stream).
function live(on) {
  const mark = $("#live");
  mark.hidden = on === null;
  mark.classList.toggle("on", on === true);
  mark.title = on ? "Live updates: connected" : "Live updates: reconnecting…";
}

// Call `fn` at most once per `ms`, the last call always landing.
function throttled(fn, ms) {
  let timer = null;
  let due = false;
  return () => {
    if (timer) { due = true; return; }
    fn();
    timer = setTimeout(function again() {
      timer = null;
      if (due) { due = false; fn(); timer = setTimeout(again, ms); }
    }, ms);
  };
}

// -- graphs: server-drawn SVG with pan and zoom ---------------------------------------
const READABLE = 0.4;  // the smallest scale a graph opens at: bigger ones open at their start

class Graph {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.k = 1; this.x = 0; this.y = 0;
    this.nodes = new Map();  // node id -> its <g>
    this.statuses = new Map();
    // the wheel zooms once the graph has focus (a click), or with Ctrl/⌘; else the page scrolls
    container.addEventListener("wheel", (event) => {
      if (document.activeElement !== container && !event.ctrlKey && !event.metaKey) return;
      event.preventDefault();
      const box = container.getBoundingClientRect();
      this.zoom(Math.exp(-event.deltaY * 0.0015), event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    container.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || event.target.closest("g.node")) return;
      const start = { x: event.clientX - this.x, y: event.clientY - this.y };
      container.setPointerCapture(event.pointerId);
      container.classList.add("dragging");
      const move = (e) => { this.x = e.clientX - start.x; this.y = e.clientY - start.y; this.apply(); };
      const end = () => {
        container.removeEventListener("pointermove", move);
        container.removeEventListener("lostpointercapture", end);
        container.classList.remove("dragging");
      };
      container.addEventListener("pointermove", move);
      container.addEventListener("lostpointercapture", end);  // after pointerup and pointercancel too
    });
    container.addEventListener("click", (event) => {
      const node = event.target.closest("g.node");
      if (node) this.onSelect?.(Number(node.dataset.node));
    });
    container.addEventListener("keydown", (event) => {
      const box = container.getBoundingClientRect();
      const step = 60;
      const keys = {
        "+": () => this.zoom(1.25, box.width / 2, box.height / 2),
        "=": () => this.zoom(1.25, box.width / 2, box.height / 2),
        "-": () => this.zoom(0.8, box.width / 2, box.height / 2),
        0: () => this.fit(),
        ArrowLeft: () => this.pan(step, 0),
        ArrowRight: () => this.pan(-step, 0),
        ArrowUp: () => this.pan(0, step),
        ArrowDown: () => this.pan(0, -step),
      };
      if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
    });
  }

  show(svgText) {
    const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml");
    const svg = document.importNode(parsed.documentElement, true);
    if (svg.nodeName !== "svg") throw new Error("the graph cannot be drawn (not SVG)");
    const [, , width, height] = (svg.getAttribute("viewBox") || "0 0 100 100").split(/[ ,]+/).map(Number);
    this.size = { width, height };
    svg.removeAttribute("viewBox");
    svg.setAttribute("width", "100%");
    svg.setAttribute("height", "100%");
    const viewport = document.createElementNS("http://www.w3.org/2000/svg", "g");
    viewport.setAttribute("class", "viewport");
    for (const child of [...svg.childNodes]) {
      if (!["defs", "style"].includes(child.nodeName)) viewport.append(child);
    }
    svg.append(viewport);
    this.viewport = viewport;
    this.nodes = new Map([...svg.querySelectorAll("g.node")].map((g) => [Number(g.dataset.node), g]));
    put(this.container, svg);
    this.colour([...this.statuses].map(([id, status]) => ({ id, status })));
    this.open();
  }

  clear(message) {
    this.size = null;
    this.viewport = null;
    this.nodes = new Map();
    put(this.container, h("p", { class: "graph-message" }, message));
  }

  // All of it if it is readable so; else its start (START is at the left, or the top).
  open() {
    if (!this.size) return;
    const box = this.container.getBoundingClientRect();
    const all = this.scaleToFit(box);
    if (all >= READABLE) { this.fit(); return; }
    this.k = READABLE;
    const wide = this.size.width >= this.size.height;
    this.x = wide ? 16 : (box.width - this.size.width * this.k) / 2;
    this.y = wide ? (box.height - this.size.height * this.k) / 2 : 16;
    this.apply();
  }

  scaleToFit(box) {
    return Math.min(box.width / this.size.width, box.height / this.size.height, 1.5) * 0.95;
  }

  fit() {
    if (!this.size) return;
    const box = this.container.getBoundingClientRect();
    this.k = this.scaleToFit(box);
    this.x = (box.width - this.size.width * this.k) / 2;
    this.y = (box.height - this.size.height * this.k) / 2;
    this.apply();
  }

  zoom(factor, cx, cy) {
    const k = Math.min(Math.max(this.k * factor, 0.02), 8);
    this.x = cx - ((cx - this.x) * k) / this.k;
    this.y = cy - ((cy - this.y) * k) / this.k;
    this.k = k;
    this.apply();
  }

  pan(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.apply();
  }

  apply() {
    this.viewport?.setAttribute("transform", `translate(${this.x.toFixed(1)} ${this.y.toFixed(1)}) scale(${this.k.toFixed(4)})`);
  }

  colour(nodes) {
    for (const { id, status } of nodes) {
      this.statuses.set(id, status);
      const element = this.nodes.get(id);
      if (!element || element.classList.contains(`status-${status}`)) continue;
      for (const name of [...element.classList]) if (name.startsWith("status-")) element.classList.remove(name);
      element.classList.add(`status-${status}`);
    }
  }

  select(id) {
    for (const element of this.container.querySelectorAll("g.node.selected")) element.classList.remove("selected");
    if (id !== null) this.nodes.get(id)?.classList.add("selected");
  }
}

function graphPanel(onSelect) {
  const canvas = h("div", { class: "graph", tabindex: "0",
    "aria-label": "graph: drag or arrow keys to pan; click, then wheel (or Ctrl+wheel) or +/- to zoom; 0 to fit" });
  const graph = new Graph(canvas, onSelect);
  const centre = () => { const b = canvas.getBoundingClientRect(); return [b.width / 2, b.height / 2]; };
  const tools = h("div", { class: "graph-tools" },
    h("button", { type: "button", title: "Zoom in", onclick: () => graph.zoom(1.25, ...centre()) }, "+"),
    h("button", { type: "button", title: "Zoom out", onclick: () => graph.zoom(0.8, ...centre()) }, "−"),
    h("button", { type: "button", title: "Show all", onclick: () => graph.fit() }, "Fit"),
    h("span", { class: "legend" }, ...["waiting", "queued", "running", "done", "failed", "skipped", "terminated", "unreached"]
      .map((s) => h("span", { class: `swatch status-${s}` }, s))));
  return { element: h("div", { class: "graph-panel" }, tools, canvas), graph };
}

// -- timelines: server-drawn SVG whose time axis the page stretches ----------------------
// The server marks each bar with its start and end (seconds from the axis' zero) and the
// axis with its span: zooming redraws the bars and the marks wider, the text as it was.
class Timeline {
  constructor(container, onSelect) {
    this.container = container;
    this.svg = null;
    this.k = 1;
    // the wheel zooms once the timeline has focus (a click), or with Ctrl/⌘; else it scrolls
    container.addEventListener("wheel", (event) => {
      if (!this.svg || (document.activeElement !== container && !event.ctrlKey && !event.metaKey)) return;
      event.preventDefault();
      this.zoom(Math.exp(-event.deltaY * 0.0015), event.clientX - container.getBoundingClientRect().left);
    }, { passive: false });
    container.addEventListener("keydown", (event) => {
      const keys = { "+": 1.25, "=": 1.25, "-": 0.8, 0: 1 / this.k };
      if (keys[event.key] === undefined) return;
      event.preventDefault();
      this.zoom(keys[event.key]);
    });
    container.addEventListener("click", (event) => {
      const run = event.target.closest("g.run");
      if (run) onSelect?.(Number(run.dataset.node), run.dataset.task ?? null);
    });
  }

  show(svgText) {
    const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml");
    const svg = document.importNode(parsed.documentElement, true);
    if (svg.nodeName !== "svg") throw new Error("the timeline cannot be drawn (not SVG)");
    [this.gutter, this.plot, this.span] = ["gutter", "plot", "span"].map((name) => Number(svg.dataset[name]));
    this.height = Number(svg.getAttribute("height"));
    this.runs = [...svg.querySelectorAll("g.run")].map((g) => ({
      start: Number(g.dataset.start), end: Number(g.dataset.end), bar: g.querySelector("rect.timebar") }));
    this.ticks = [...svg.querySelectorAll("g.tick")].map((g) => ({
      t: Number(g.dataset.t), line: g.querySelector("line"), text: g.querySelector("text") }));
    const { scrollLeft, scrollTop } = this.container;  // (a refresh keeps the place and the zoom)
    this.svg = svg;
    if (this.runs.length) put(this.container, svg);
    else put(this.container, h("p", { class: "graph-message" }, "No task has started yet."));
    this.apply();
    this.container.scrollLeft = scrollLeft;
    this.container.scrollTop = scrollTop;
  }

  clear(message) {
    this.svg = null;
    put(this.container, h("p", { class: "graph-message" }, message));
  }

  zoom(factor, cx = this.container.clientWidth / 2) {
    if (!this.svg) return;
    const k = Math.min(Math.max(this.k * factor, 1), 5000);
    const at = (this.container.scrollLeft + cx - this.gutter) / (this.plot * this.k);  // (the time under cx stays)
    this.k = k;
    this.apply();
    this.container.scrollLeft = Math.max(0, this.gutter + at * this.plot * k - cx);
  }

  apply() {
    if (!this.svg) return;
    const scale = (this.plot * this.k) / this.span;
    const x = (t) => (this.gutter + t * scale).toFixed(1);
    const width = Math.ceil(this.gutter + this.plot * this.k + 12);
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${this.height}`);
    for (const run of this.runs) {
      run.bar.setAttribute("x", x(run.start));
      run.bar.setAttribute("width", Math.max(1, (run.end - run.start) * scale).toFixed(1));
    }
    for (const tick of this.ticks) {
      const at = x(tick.t);
      tick.line.setAttribute("x1", at);
      tick.line.setAttribute("x2", at);
      tick.text.setAttribute("x", at);
    }
    this.container.dataset.zoom = this.k.toFixed(2);
  }
}

function timelinePanel(onSelect) {
  const canvas = h("div", { class: "timeline", tabindex: "0",
    "aria-label": "timeline: click, then wheel (or Ctrl+wheel) or +/- to zoom the time axis; 0 for all of it" });
  const timeline = new Timeline(canvas, onSelect);
  const tools = h("div", { class: "graph-tools" },
    h("button", { type: "button", title: "Zoom in (time)", onclick: () => timeline.zoom(1.5) }, "+"),
    h("button", { type: "button", title: "Zoom out (time)", onclick: () => timeline.zoom(1 / 1.5) }, "−"),
    h("button", { type: "button", title: "All of it", onclick: () => timeline.zoom(1 / timeline.k) }, "Fit"),
    h("span", { class: "muted" }, "Every task run, by start: hover a bar for its times, click it for its node."),
    h("span", { class: "legend" }, ...["queued", "running", "done", "failed", "terminated"]
      .map((s) => h("span", { class: `swatch status-${s}` }, s))));
  return { element: h("div", { class: "graph-panel timeline-panel", hidden: true }, tools, canvas), timeline };
}

// -- views -----------------------------------------------------------------------------
let lastList = "#/";  // the list as last seen (its filters and page), to go back to

function query() {
  const [, search = ""] = location.hash.split("?");
  return new URLSearchParams(search);
}

const path = (id) => `workflows/${encodeURIComponent(id)}`;

function listView(main, signal) {
  const params = query();
  let state = STATES.includes(params.get("state")) ? params.get("state") : "";
  let search = params.get("q") || "";
  const schedule = params.get("schedule") || "";  // (those a schedule started: by state alone)
  let page = Math.max(0, Math.floor(Number(params.get("page"))) || 0);
  let asked = 0;  // the number of the latest refresh: older answers are dropped

  const tabs = h("div", { class: "tabs", role: "tablist" });
  const box = h("input", { type: "search", placeholder: "Id or flow name, its start", value: search, "aria-label": "search" });
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  put(main, h("section", { class: "list" },
    h("div", { class: "toolbar" }, tabs, schedule ? h("span", { class: "filter" }, "started by schedule ",
      h("a", { href: "#/schedules" }, h("code", {}, schedule)), " ", h("a", { href: "#/", title: "all workflows" }, "✕"))
      : box),
    h("table", { class: "workflows" },
      h("thead", {}, h("tr", {}, ...["Workflow", "Flow", "State", "Started", "Updated", "Took"].map((t) => h("th", {}, t)))),
      body),
    pager));

  async function refresh() {
    const mine = ++asked;
    const p = new URLSearchParams({ offset: page * PAGE, limit: PAGE, order: "newest" });
    if (state) p.set("state", state);
    if (schedule) p.set("schedule", schedule);
    else if (search) p.set("q", search);
    let result;
    try {
      result = await json(`workflows?${p}`, { signal });
    } catch (error) {
      if (error.name !== "AbortError" && error.status !== 401 && mine === asked) toast(error.message);
      return;
    }
    if (mine !== asked) return;
    const last = Math.max(0, Math.ceil(result.total / PAGE) - 1);
    if (page > last) { page = last; update(); return; }  // past the end (what was there went away)
    const counts = result.counts;
    const all = Object.values(counts).reduce((a, b) => a + b, 0);
    put(tabs, ...["", ...STATES].map((s) => h("button", {
      type: "button", role: "tab", class: s === state ? "active" : "", "aria-selected": String(s === state),
      dataset: { state: s || "all" },
      onclick: () => { state = s; page = 0; update(); },
    }, s || "all", schedule ? null : h("span", { class: "count" }, String(s ? counts[s] ?? 0 : all)))));
    put(body, ...result.workflows.map((w) => h("tr", { dataset: { id: w.id } },
      h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.id)}` }, h("code", {}, w.id))),
      h("td", {}, w.name || h("span", { class: "muted" }, "(unnamed)")),
      h("td", {}, badge(w.state)),
      h("td", {}, moment(w.created)),
      h("td", {}, moment(w.updated)),
      w.state === "running" ? h("td", { class: "ticking", dataset: { since: w.created } }, took(w.created, null))
        : h("td", {}, took(w.created, w.updated)))));
    if (!result.workflows.length) {
      put(body, h("tr", {}, h("td", { colspan: "6", class: "empty" },
        search || state ? "No workflow matches." : "No workflows yet. ", !search && !state
          ? h("a", { href: "#/new", class: "admin" }, "Start one.") : null)));
    }
    const total = result.total;
    const first = total ? page * PAGE + 1 : 0;
    put(pager,
      h("button", { type: "button", disabled: page === 0, onclick: () => { page -= 1; update(); } }, "‹ Newer"),
      h("span", {}, `${first}–${Math.min(total, (page + 1) * PAGE)} of ${total}`),
      h("button", { type: "button", disabled: page >= last, onclick: () => { page += 1; update(); } }, "Older ›"));
  }

  function update() {
    const p = new URLSearchParams();
    if (state) p.set("state", state);
    if (schedule) p.set("schedule", schedule);
    else if (search) p.set("q", search);
    if (page) p.set("page", page);
    const text = p.toString();
    lastList = `#/${text ? "?" + text : ""}`;
    history.replaceState(null, "", lastList);
    refresh();
  }

  let typing;
  box.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { search = box.value.trim(); page = 0; update(); }, 250);
  });
  lastList = location.hash || "#/";
  const ticking = setInterval(() => {  // running workflows age between the list's refreshes
    for (const cell of body.querySelectorAll("td.ticking")) cell.textContent = took(Number(cell.dataset.since), null);
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(ticking));
  const later = throttled(refresh, 1000);
  // (every (re)connection refreshes: what changed while it was away shows)
  listen("events", (kind) => { if (kind === "workflow") later(); }, signal, refresh);
}

function workflowView(main, signal, id) {
  let doc = null;
  let selected = null;
  let selectedTask = null;  // an item run of the selected node (its task id), or null: the node
  let text = null;  // the flow text as submitted
  let gone = false;
  const drawn = { actions: null, values: null, details: null, rows: new Map(), order: "" };
  const title = h("h1", {});
  const about = h("p", { class: "doc", hidden: true });  // the @flow doc string
  const facts = h("dl", { class: "facts" });
  const actions = h("div", { class: "actions" });
  const banner = h("p", { class: "banner", hidden: true });
  const values = h("div", { class: "values" });
  const rows = h("tbody");
  const filter = h("input", { type: "search", placeholder: "Filter nodes by name or status", "aria-label": "filter nodes" });
  const details = h("aside", { class: "details", hidden: true });
  const { element: panel, graph } = graphPanel((node) => select(node));
  // a bar of an item run shows that run when the status document lists it, else its node
  const { element: timePanel, timeline } = timelinePanel((node, task) => select(node,
    doc?.nodes.find((n) => n.id === node)?.items?.runs.some((r) => r.task === task) ? task : null));
  let timed = false;  // the timeline is shown
  const viewTab = (name, on) => h("button", { type: "button", role: "tab", class: on ? "active" : null,
    "aria-selected": String(on), dataset: { view: name.toLowerCase() }, onclick: () => view(name === "Timeline") }, name);
  const views = h("div", { class: "tabs views", role: "tablist" }, viewTab("Graph", true), viewTab("Timeline", false));
  put(main, h("section", { class: "workflow" },
    h("div", { class: "head" }, h("div", {}, title, h("code", { class: "id" }, id), about), actions),
    banner, facts, views, panel, timePanel,
    h("div", { class: "below" },
      h("div", { class: "nodes-box" }, filter,
        h("div", { class: "nodes-scroll" }, h("table", { class: "nodes" },
          h("thead", {}, h("tr", {}, ...["#", "Node", "Status", "Attempt", "Started", "Ended", "Took", "Input", "Output", "Error"]
            .map((t) => h("th", {}, t)))),
          rows))),
      details),
    values));

  const act = (verb, question, explanation, run, { danger = true, admin = true } = {}) => h("button", {
    type: "button", class: [danger ? "danger" : "", admin ? "admin" : ""].join(" ").trim() || null,
    dataset: { action: verb.toLowerCase().replace(/ /g, "-") },
    onclick: async () => {
      if (question && !(await confirmAction(question, explanation, verb))) return;
      try {
        await run();
      } catch (error) {
        toast(error.message);
      }
    },
  }, verb);

  function renderActions() {
    const state = gone ? "gone" : doc.state;
    if (drawn.actions === state) return;  // (rebuilt only when they change: focus stays put)
    drawn.actions = state;
    if (gone) { put(actions); return; }
    put(actions,
      state === "running" ? act("Terminate", `Terminate workflow ${id}?`,
        "Nothing new starts and running tasks are told to cancel. It can be resumed later.",
        async () => show(await json(`${path(id)}/terminate`, { method: "POST" }))) : null,
      ["failed", "terminated"].includes(state) ? act("Resume", `Resume workflow ${id}?`,
        "What failed or was interrupted runs again; what finished does not.",
        async () => show(await json(`${path(id)}/resume`, { method: "POST" })), { danger: false }) : null,
      act("Run again", null, null, async () => {
        sessionStorage.setItem(DRAFT, JSON.stringify({ flow: text ?? "", input: pretty(doc.input ?? {}) }));
        location.hash = "#/new";
      }, { danger: false }),
      act("Archive", null, null, async () => {
        const blob = await (await request(`${path(id)}/archive`)).blob();
        const link = h("a", { href: URL.createObjectURL(blob), download: `${id}.json` });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 10000);
        toast(`Archive of ${id} downloaded`, "info");
      }, { danger: false, admin: false }),
      state !== "running" ? act("Delete", `Delete workflow ${id}?`,
        "Its state, history and task records are removed for good. Download its archive first to keep them.",
        async () => {
          await request(path(id), { method: "DELETE" });
          toast(`Workflow ${id} deleted`, "info");
          location.hash = lastList;
        }) : null);
  }

  function show(next) {
    const first = doc === null;
    doc = next;
    put(title, doc.name || "(unnamed flow)", " ", badge(gone ? "deleted" : doc.state));
    about.textContent = doc.doc || "";
    about.hidden = !about.textContent;
    put(facts,
      h("dt", {}, "Started"), h("dd", {}, moment(doc.created)),
      h("dt", {}, "Updated"), h("dd", {}, moment(doc.updated)),
      h("dt", {}, "Took"), h("dd", { class: "took" }, took(doc.created, doc.state === "running" ? null : doc.updated)),
      h("dt", {}, "Tasks"), h("dd", {}, summary(doc.nodes)));
    const shownValues = JSON.stringify([doc.input, doc.output, doc.error, text]);
    if (drawn.values !== shownValues) {
      drawn.values = shownValues;
      put(values,
        h("div", {}, h("h2", {}, "Input"), h("pre", {}, pretty(doc.input))),
        h("div", {}, h("h2", {}, "Output"), h("pre", { class: "output" }, pretty(doc.output))),
        doc.error ? h("div", {}, h("h2", {}, "Error"), h("pre", { class: "error" }, pretty(doc.error))) : null,
        text !== null ? h("div", { class: "flow-text" }, h("h2", {}, "Flow"), h("pre", { class: "code" }, text)) : null);
    }
    renderActions();
    graph.colour(doc.nodes);
    if (timed) drawTimeline();
    renderRows();
    if (selected !== null) showDetails();
    if (first) document.title = `${doc.name || id} · littleflow`;
  }

  // The table: a row per node, and under a node run once per item of a `*` a row per item
  // run (the first ones: the status document carries 100) and how many more there are. A
  // node's rows are rebuilt only when it changed, all of them only when the filter changes
  // what is listed. The filter keeps a node by its name, or by its status or an item's.
  function renderRows() {
    const wanted = filter.value.trim().toLowerCase();
    const listed = [];
    for (const n of doc.nodes) {
      if (STRUCTURE.includes(n.kind)) continue;
      const named = !wanted || n.label.toLowerCase().includes(wanted);
      const items = (n.items?.runs || []).filter((r) => named || r.status.startsWith(wanted));
      if (named || n.status.startsWith(wanted) || items.length) listed.push([n, items]);
    }
    const order = listed.map(([n, items]) => `${n.id}:${items.length}`).join(",");
    const made = listed.map(([n, items]) => {
      const sign = JSON.stringify([n, items.length]);
      const had = drawn.rows.get(n.id);
      if (had && had.sign === sign) return had.rows;
      const group = nodeRows(n, items);
      if (had?.rows[0].isConnected && order === drawn.order) {
        had.rows[0].replaceWith(...group);
        for (const row of had.rows.slice(1)) row.remove();
      }
      drawn.rows.set(n.id, { sign, rows: group });
      return group;
    });
    if (order !== drawn.order) {
      drawn.order = order;
      put(rows, made);
    }
    markSelected();
  }

  function markSelected() {
    for (const row of rows.children) {
      row.classList.toggle("selected", row.dataset.task !== undefined ? row.dataset.task === selectedTask
        : Number(row.dataset.node) === selected && selectedTask === null);
    }
  }

  // A row that a click, Enter or space selects.
  const pickable = (attrs, pick, ...cells) => h("tr", { ...attrs, tabindex: "0", onclick: pick,
    onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pick(); } } },
  ...cells);

  function nodeRows(n, items) {
    const more = n.items ? n.items.count - n.items.runs.length : 0;
    return [nodeRow(n), ...items.map((r) => itemRow(n, r)),
      more > 0 ? h("tr", { class: "more" }, h("td", {}), h("td", { colspan: "9", class: "muted" },
        `… ${more.toLocaleString()} more ${more === 1 ? "item" : "items"} (the first ${n.items.runs.length.toLocaleString()} are listed)`))
        : null].filter(Boolean);
  }

  function itemRow(n, r) {
    return pickable({ class: "item", dataset: { task: r.task, item: r.index.join("."), status: r.status } },
      () => select(n.id, r.task),
      h("td", {}),
      h("td", { class: "item", title: `${n.label}, item ${r.index.join(".")} (task ${r.task})` }, `item ${r.index.join(".")}`),
      h("td", {}, badge(r.status)),
      h("td", {}, r.attempt ?? ""),
      h("td", {}, moment(r.started)),
      h("td", {}, moment(r.ended)),
      h("td", {}, r.started ? took(r.started, r.ended) : ""),
      h("td", { class: "json" }, brief(r.input)),
      h("td", { class: "json" }, brief(r.output)),
      h("td", { class: "error" }, r.error || ""));
  }

  function nodeRow(n) {
    return pickable({ dataset: { node: n.id, status: n.status } }, () => select(n.id),
      h("td", {}, String(n.id)),
      h("td", { title: `${n.kind}, line ${n.line} column ${n.column}` }, n.label),
      h("td", {}, badge(n.status)),
      h("td", {}, n.attempt ?? ""),
      h("td", {}, moment(n.started)),
      h("td", {}, moment(n.ended)),
      h("td", {}, n.started ? took(n.started, n.ended) : ""),
      h("td", { class: "json" }, brief(n.input)),
      h("td", { class: "json" }, brief(n.output)),
      h("td", { class: "error" }, n.error || ""));
  }

  function view(timeline) {
    timed = timeline;
    panel.hidden = timed;
    timePanel.hidden = !timed;
    for (const tab of views.children) {
      const on = (tab.dataset.view === "timeline") === timed;
      tab.classList.toggle("active", on);
      tab.setAttribute("aria-selected", String(on));
    }
    if (timed) drawTimeline();
  }

  let timing = null;  // the timeline request in flight
  async function fetchTimeline() {
    if (!timed || timing) return;
    timing = request(`${path(id)}/timeline?format=svg`, { signal, headers: { Accept: "image/svg+xml" } });
    try {
      timeline.show(await (await timing).text());
    } catch (error) {
      if (error.name !== "AbortError" && error.status !== 401) timeline.clear(`The timeline cannot be shown: ${error.message}`);
    } finally {
      timing = null;
    }
  }
  const drawTimeline = throttled(fetchTimeline, 1500);  // (a running workflow's changes redraw it)

  filter.addEventListener("input", () => doc && renderRows());
  const ticking = setInterval(() => {  // a running workflow's age goes on between its changes
    if (doc?.state === "running" && !gone) $(".took", facts).textContent = took(doc.created, null);
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(ticking));

  function select(nodeId, task = null) {
    selected = nodeId;
    selectedTask = task;
    graph.select(nodeId);
    markSelected();
    showDetails();
  }

  function unselect() {
    selected = null;
    selectedTask = null;
    drawn.details = null;
    graph.select(null);
    markSelected();
    details.hidden = true;
    stopLog();
  }

  // The panel's log: what the node's task runs wrote (GET …/logs?node=N), fetched when the
  // panel opens, when the node's status changes, and every second while it runs (a worker
  // sends a running task's lines every second). Closing the panel, another node or leaving
  // the page aborts what is in flight. Lines are text nodes only: a task may print HTML.
  const logLines = h("div", { class: "log-lines", tabindex: "0", "aria-label": "log" });
  const logBox = h("section", { class: "log" }, h("h3", {}, "Log"), logLines);
  // the node whose log shows, and its item run if one is selected (else all its runs):
  // {node, task, controller, abort, busy, again, timer, sign, drawn}
  let log = null;

  function stopLog() {
    if (!log) return;
    clearTimeout(log.timer);
    log.controller.abort();
    signal.removeEventListener("abort", log.abort);
    log = null;
  }

  function startLog(nodeId, task) {
    stopLog();
    const controller = new AbortController();
    const abort = () => controller.abort();
    signal.addEventListener("abort", abort, { once: true });
    log = { node: nodeId, task, controller, abort, busy: false, again: false, timer: null, sign: null, drawn: false };
    put(logLines, h("p", { class: "muted" }, "Loading…"));
    fetchLog();
  }

  async function fetchLog() {
    const mine = log;
    if (!mine) return;
    if (mine.busy) { mine.again = true; return; }  // (once more when the one in flight lands)
    clearTimeout(mine.timer);
    mine.busy = true;
    try {
      const answer = await json(`${path(id)}/logs?node=${mine.node}`, { signal: mine.controller.signal });
      if (mine === log) drawLog(mine.task === null ? answer.runs : answer.runs.filter((r) => r.task === mine.task));
    } catch (error) {
      if (error.name === "AbortError" || mine !== log) return;
      if (error.status === 404) return;  // (deleted: what showed stays, as the rest of the page)
      if (error.status !== 401) put(logLines, h("p", { class: "error" }, `The log cannot be shown: ${error.message}`));
    } finally {
      mine.busy = false;
    }
    if (mine !== log) return;
    if (mine.again) { mine.again = false; fetchLog(); return; }
    if (logStatus() === "running" && !gone) mine.timer = setTimeout(fetchLog, 1000);
  }

  // The status of what the log shows: its node's, or its item run's.
  function logStatus() {
    const node = doc?.nodes.find((n) => n.id === log.node);
    return log.task === null ? node?.status : node?.items?.runs.find((r) => r.task === log.task)?.status;
  }

  function drawLog(runs) {
    const sign = JSON.stringify(runs);
    if (log.sign === sign) return;
    log.sign = sign;
    const atEnd = !log.drawn || logLines.scrollTop + logLines.clientHeight >= logLines.scrollHeight - 4;
    log.drawn = true;
    const running = logStatus() === "running";
    put(logLines, runs.length ? runs.map((run) => h("div", { class: "log-run", dataset: { item: run.item ?? "" } },
      h("div", { class: "log-head" }, [run.item !== null ? `item ${run.item}` : null,
        run.attempt ? `attempt ${run.attempt}` : null, run.status,
        run.dropped ? `${run.dropped.toLocaleString()} earlier lines dropped` : null].filter(Boolean).join(" · ")),
      h("pre", {}, run.lines.length ? run.lines.join("\n") : h("span", { class: "muted" }, "(nothing written)"))))
      : h("p", { class: "muted" }, running ? "Nothing written yet." : "Nothing written."));
    if (atEnd) logLines.scrollTop = logLines.scrollHeight;
  }

  function showDetails() {
    const node = doc?.nodes.find((n) => n.id === selected);
    if (!node) return;
    // an item run of it (as listed: the status document has the first ones), or the node
    const run = selectedTask === null ? null : node.items?.runs.find((r) => r.task === selectedTask) ?? null;
    const sign = JSON.stringify([node, selectedTask]);
    if (drawn.details === sign) return;  // (unchanged: its scroll and selection stay)
    drawn.details = sign;
    details.hidden = false;
    const shown = (value) => value !== undefined && value !== null;
    const logged = node.kind === "task" || node.kind === "resource";
    const subject = run || node;
    const scrolled = logLines.scrollTop;  // (moving the log back in loses its scroll)
    put(details,
      h("button", { type: "button", class: "link close", title: "Close", "aria-label": "close", onclick: unselect }, "×"),
      h("h2", {}, node.label, run ? [" ", h("span", { class: "item" }, `item ${run.index.join(".")}`)] : null,
        " ", badge(subject.status)),
      h("dl", { class: "facts" },
        h("dt", {}, "Kind"), h("dd", {}, node.kind),
        h("dt", {}, "Where"), h("dd", {}, `line ${node.line}, column ${node.column}`),
        run ? [h("dt", {}, "Task"), h("dd", {}, h("code", {}, run.task))] : null,
        subject.attempt ? [h("dt", {}, "Attempt"), h("dd", {}, String(subject.attempt))] : null,
        subject.worker ? [h("dt", {}, "Worker"), h("dd", {}, subject.worker)] : null,
        subject.started ? [h("dt", {}, "Started"), h("dd", {}, moment(subject.started))] : null,
        subject.started ? [h("dt", {}, "Took"), h("dd", {}, took(subject.started, subject.ended))] : null),
      subject.error ? [h("h3", {}, "Error"), h("pre", { class: "error" }, subject.error)] : null,
      shown(subject.input) ? [h("h3", {}, "Input"), h("pre", {}, pretty(subject.input))] : null,
      shown(subject.output) ? [h("h3", {}, "Output"), h("pre", {}, pretty(subject.output))] : null,
      !run && node.note ? [h("h3", {}, "Note"), h("p", {}, node.note)] : null,
      logged ? logBox : null);
    logLines.scrollTop = scrolled;
    const task = run ? run.task : null;
    if (!logged) stopLog();
    else if (log?.node === node.id && log.task === task) fetchLog();
    else startLog(node.id, task);
  }

  function missing(error) {
    put(main, h("section", { class: "missing" }, h("h1", {}, "No such workflow"), h("p", {}, error.message),
      h("a", { href: lastList }, "Back to the workflows")));
  }

  json(`${path(id)}/definition`, { signal }).then((definition) => {
    text = definition.text;
    if (doc) show(doc);
  }, () => {});
  request(`${path(id)}/graph?format=svg`, { signal, headers: { Accept: "image/svg+xml" } })
    .then((response) => response.text())
    .then((svg) => graph.show(svg))
    .catch((error) => {
      if (error.name === "AbortError" || error.status === 401) return;
      if (error.status === 404) missing(error);
      else graph.clear(`The graph cannot be shown: ${error.message}`);
    });
  listen(`${path(id)}/watch`, (kind, data) => {
    if (kind === "status") show(data);
    else if (kind === "gone") {
      gone = true;
      banner.hidden = false;
      banner.textContent = "This workflow has been deleted: what shows is how it was last seen.";
      if (doc) show(doc);
    }
  }, signal);
}

function summary(nodes) {
  const counts = {};
  for (const node of nodes) if (node.kind === "task") counts[node.status] = (counts[node.status] || 0) + 1;
  return Object.entries(counts).map(([status, n]) => `${n} ${status}`).join(", ") || "none";
}

const MAX_FLOW_FILE = 10 * 1024 * 1024;  // what the API takes in one request

function newView(main, signal) {
  const flow = h("textarea", { id: "flow-text", class: "code", rows: "12", spellcheck: "false", "aria-label": "flow text",
    placeholder: "fetch -> { clean -> store  index } -> notify" });
  const file = h("input", { type: "file", accept: ".flow,.txt,.yaml,.yml,text/plain", "aria-label": "flow file" });
  const input = h("textarea", { id: "flow-input", class: "code", rows: "5", spellcheck: "false", "aria-label": "input JSON" }, "{}");
  const errors = h("ul", { class: "errors" });
  const inputError = h("p", { class: "error" });
  const run = h("button", { type: "submit", class: "primary", disabled: true }, "Run");
  const { element: panel, graph } = graphPanel(null);
  const note = h("p", { class: "muted" }, "The graph appears here as you type.");
  const about = h("p", { class: "doc", hidden: true });  // the @flow doc string (the picture's <desc>)
  put(main, h("section", { class: "new" },
    h("form", { class: "editor", onsubmit: submit },
      h("h1", {}, "New workflow"),
      h("div", { class: "field-head" }, h("label", { for: "flow-text" }, "Flow"),
        h("span", { class: "muted" }, " — paste it, or "), file),
      flow, errors,
      h("label", { for: "flow-input" }, "Input (JSON)"), input, inputError,
      h("div", { class: "buttons" }, run, h("span", { class: "muted read-only-note" }, "Running needs an admin token."))),
    h("div", { class: "preview" }, h("h2", {}, "Graph"), about, note, panel)));

  let compiled = false;
  let compiling = null;  // the compile request in flight, aborted by the next
  // Run sends an Idempotency-Key: Run again after an answer that never came gives the
  // workflow the first Run started, not a second one. A change of flow or input is a new
  // request, with a new key.
  let key = null;
  const draft = JSON.parse(sessionStorage.getItem(DRAFT) || "null");
  sessionStorage.removeItem(DRAFT);

  async function preview() {
    key = null;
    compiling?.abort();
    const mine = compiling = new AbortController();
    signal.addEventListener("abort", () => mine.abort());
    const text = flow.value;
    if (!text.trim()) {
      put(errors);
      compiled = false;
      graph.clear("");
      note.hidden = false;
      about.hidden = true;
      check();
      return;
    }
    try {
      const response = await request("compile?format=svg", {
        method: "POST", body: text, signal: mine.signal, headers: { "Content-Type": "text/plain", Accept: "image/svg+xml" } });
      const svg = await response.text();
      put(errors);
      note.hidden = true;
      panel.classList.remove("stale");
      graph.show(svg);
      about.textContent = panel.querySelector("g.viewport > desc")?.textContent || "";
      about.hidden = !about.textContent;
      compiled = true;
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error.problem?.title === "Too large to draw") {  // it compiles: only its picture is refused
        put(errors);
        note.hidden = true;
        panel.classList.remove("stale");
        graph.clear(error.message);
        about.hidden = true;
        compiled = true;
        check();
        return;
      }
      compiled = false;
      panel.classList.add("stale");  // the graph of the last text that compiled, dimmed
      const found = error.problem?.errors || [{ message: error.message }];
      put(errors, ...found.map((e) => h("li", {}, e.line
        ? h("button", { type: "button", class: "link where", title: "Show it in the flow text", onclick: () => goTo(e.line, e.column) },
          `line ${e.line}, column ${e.column}`)
        : null, e.line ? ": " : null, e.message)));
    }
    check();
  }

  function goTo(line, column) {
    const lines = flow.value.split("\n");
    const at = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, column - 1);
    flow.focus();
    flow.setSelectionRange(at, Math.min(at + 1, flow.value.length));
  }

  function inputProblem() {
    if (!input.value.trim()) return null;
    try {
      JSON.parse(input.value);  // (only checked here: the text itself is sent, numbers and all)
      return null;
    } catch (error) {
      return `The input is not JSON: ${error.message}`;
    }
  }

  function check() {
    const problem = inputProblem();
    inputError.textContent = problem || "";
    run.disabled = !compiled || problem !== null || session.scope === "read";
  }

  async function submit(event) {
    event.preventDefault();
    if (inputProblem() !== null) return;
    run.disabled = true;
    const form = new FormData();
    form.set("flow", flow.value);
    form.set("input", input.value.trim() || "{}");
    key ??= [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
    try {
      const created = await json("workflows", { method: "POST", body: form, headers: { "Idempotency-Key": key } });
      location.hash = `#/workflows/${encodeURIComponent(created.id)}`;
    } catch (error) {
      toast(error.message);
      check();
    }
  }

  let typing;
  flow.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(preview, 300); });
  input.addEventListener("input", () => { key = null; check(); });
  if (draft) {
    flow.value = draft.flow;
    input.value = draft.input;
    preview();
  }
  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    file.value = "";  // (the same file chosen again loads again)
    if (!chosen) return;
    if (chosen.size > MAX_FLOW_FILE) {
      toast(`${chosen.name} is ${chosen.size.toLocaleString()} bytes; a flow may have at most ${MAX_FLOW_FILE.toLocaleString()}`);
      return;
    }
    flow.value = await chosen.text();
    preview();
  });
}

let signingIn = false;

function signIn(error) {
  if (signingIn) return;
  signingIn = true;
  current?.abort();
  live(null);
  $("#scope").hidden = true;
  $("#signout").hidden = true;
  const next = location.hash.startsWith("#/sign-in") ? "#/" : location.hash || "#/";
  const token = h("input", { type: "password", autocomplete: "current-password", required: true,
    "aria-label": "token", placeholder: "Token" });
  const keep = h("input", { type: "checkbox" });
  const message = h("p", { class: "error" }, session.token && error ? "That token was refused." : "");
  const form = h("form", { class: "sign-in" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This littleflow API needs a token. A read token lets you watch; an admin token also lets you run and steer workflows."),
    token, h("label", { class: "keep" }, keep, " Keep me signed in on this browser"),
    h("button", { type: "submit", class: "primary" }, "Sign in"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await json("session", { token: token.value.trim() });
      if (!answer.scope) throw new ApiError(401, { title: "That token was refused." });
      session.save(token.value.trim(), keep.checked);
      await started();
      signingIn = false;
      if (location.hash === next) route();
      else location.hash = next;  // (routes on hashchange)
    } catch (failure) {
      message.textContent = failure.status === 401 ? "That token was refused." : failure.message;
    }
  });
  history.replaceState(null, "", "#/sign-in");
  put($("#main"), form);
  token.focus();
}

// -- schedules -------------------------------------------------------------------------
// Every schedule: when it fires, its next ticks, its latest runs with their states; pause,
// resume and run now (admin). Redrawn every few seconds and as workflows change.
function schedulesView(main, signal) {
  const body = h("tbody");
  put(main, h("section", { class: "list schedules" },
    h("div", { class: "toolbar" }, h("h1", {}, "Schedules"),
      h("span", { class: "muted" }, "add one with ", h("code", {}, "littleflow schedule add NAME FLOW --cron EXPR"),
        " or POST /schedules")),
    h("table", { class: "workflows" },
      h("thead", {}, h("tr", {}, ...["Schedule", "Flow", "When", "Next ticks", "Latest runs", ""].map((t) => h("th", {}, t)))),
      body)));

  async function act(name, verb) {
    try {
      const answer = await json(`schedules/${encodeURIComponent(name)}/${verb}`, { method: "POST", signal });
      if (verb === "run") toast(`Started ${answer.id}`, "info");
      refresh();
    } catch (error) {
      if (error.name !== "AbortError") toast(error.message);
    }
  }

  function row(s) {
    const runs = s.recent.slice(0, 5).map((run) => h("a", {
      href: `#/workflows/${encodeURIComponent(run.id)}`, class: "run",
      title: `${run.id}, tick ${new Date(run.tick * 1000).toLocaleString()}${run.manual ? " (run now)" : ""}`,
    }, badge(run.state || "deleted")));
    const skipped = s.skipped ? h("div", { class: "muted" }, `skipped ${new Date(s.skipped.tick * 1000).toLocaleString()} (${s.skipped.reason})`) : null;
    return h("tr", { dataset: { schedule: s.name } },
      h("td", {}, h("a", { href: "#/?" + new URLSearchParams({ schedule: s.name }) }, h("code", {}, s.name))),
      h("td", {}, s.flow || h("span", { class: "muted" }, "(unnamed)")),
      h("td", {}, s.when, h("div", { class: "muted" }, `catchup ${s.catchup}, overlap ${s.overlap}`)),
      h("td", { class: "ticks" }, s.paused ? badge("paused") : s.ticks.map((tick) => h("div", {}, moment(tick)))),
      h("td", { class: "runs" }, runs.length ? runs : h("span", { class: "muted" }, "none yet"), skipped),
      h("td", { class: "admin" },
        h("button", { type: "button", onclick: () => act(s.name, s.paused ? "resume" : "pause") }, s.paused ? "Resume" : "Pause"),
        " ", h("button", { type: "button", onclick: () => act(s.name, "run") }, "Run now")));
  }

  async function refresh() {
    let result;
    try {
      result = await json("schedules", { signal });
    } catch (error) {
      if (error.name !== "AbortError" && error.status !== 401) toast(error.message);
      return;
    }
    put(body, result.schedules.length ? result.schedules.map(row)
      : h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No schedules yet.")));
  }

  const every = setInterval(refresh, 5000);  // (the next ticks move on by themselves)
  signal.addEventListener("abort", () => clearInterval(every));
  const later = throttled(refresh, 1000);
  listen("events", (kind) => { if (kind === "workflow") later(); }, signal, refresh);
}

// -- routing ---------------------------------------------------------------------------
let current = null;

function route() {
  if (signingIn) return;
  current?.abort();
  current = new AbortController();
  const main = $("#main");
  const [where] = location.hash.slice(1).split("?");
  const parts = where.split("/").filter(Boolean);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", (parts[0] || "list") === link.dataset.nav || (parts[0] === "workflows" && link.dataset.nav === "list"));
  }
  document.title = "littleflow";
  live(null);
  if (parts[0] === "workflows" && parts[1]) {
    let id;
    try {
      id = decodeURIComponent(parts[1]);
    } catch {
      id = parts[1];  // (a stray %: the API says there is no such workflow)
    }
    workflowView(main, current.signal, id);
  } else if (parts[0] === "new") newView(main, current.signal);
  else if (parts[0] === "schedules") schedulesView(main, current.signal);
  else listView(main, current.signal);
}

async function started() {
  const answer = await json("session");
  session.auth = answer.auth;
  session.scope = answer.scope;
  document.body.classList.toggle("read-only", answer.scope === "read");
  const scope = $("#scope");
  scope.hidden = !answer.auth;
  scope.textContent = answer.scope === "read" ? "read only" : "admin";
  $("#signout").hidden = !answer.auth;
}

$("#signout").addEventListener("click", () => {
  session.save(null);
  signIn(null);
});
window.addEventListener("hashchange", route);

try {
  await started();
  if (session.auth && !session.scope) signIn(null);
  else route();
} catch (error) {
  if (error.status !== 401) {
    put($("#main"), h("section", { class: "missing" }, h("h1", {}, "The API does not answer"), h("p", {}, error.message),
      h("p", {}, h("a", { href: location.href, onclick: () => location.reload() }, "Try again"))));
  }
}
