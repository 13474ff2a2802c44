// The littleflow web console: one page, routed by the URL's hash, talking to the API
// it is served by. User text only ever reaches the page as text nodes (never as HTML);
// graphs come from the server as SVG with every label escaped.

const API = new URL("..", location.href);  // the console lives at /console/ beside the API
const STATES = ["running", "finished", "failed", "terminated"];
const PAGE = 50;
const STRUCTURE = ["start", "end", "subflow-start", "subflow-end"];  // drawn, not listed
const TOKEN = "littleflow-token";

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

function when(seconds) {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
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
  if (body !== undefined) {
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

const json = async (path, options) => (await request(path, options)).json();

// Server-Sent Events over fetch (EventSource cannot send a bearer token), reconnecting
// with Last-Event-ID until `signal` aborts.
async function listen(path, onEvent, signal) {
  let lastId = null;
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await request(path, { headers, signal });
      live(true);
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            const [field, ...rest] = line.split(":");
            const text = rest.join(":").replace(/^ /, "");
            if (field === "event") event = text;
            else if (field === "data") data += (data ? "\n" : "") + text;
            else if (field === "id") lastId = text;
          }
          if (data) onEvent(event, JSON.parse(data));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error.status === 401 || error.status === 404) { live(false); return; }
    }
    live(false);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

function live(on) {
  const mark = $("#live");
  mark.classList.toggle("on", on);
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
class Graph {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.k = 1; this.x = 0; this.y = 0;
    container.addEventListener("wheel", (event) => {
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
      const up = () => {
        container.removeEventListener("pointermove", move);
        container.classList.remove("dragging");
      };
      container.addEventListener("pointermove", move);
      container.addEventListener("pointerup", up, { once: true });
    });
    container.addEventListener("click", (event) => {
      const node = event.target.closest("g.node");
      if (node) this.onSelect?.(Number(node.dataset.node));
    });
    container.addEventListener("keydown", (event) => {
      const box = container.getBoundingClientRect();
      if (event.key === "+" || event.key === "=") this.zoom(1.25, box.width / 2, box.height / 2);
      else if (event.key === "-") this.zoom(0.8, box.width / 2, box.height / 2);
      else if (event.key === "0") this.fit();
    });
  }

  show(svgText) {
    const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml");
    const svg = document.importNode(parsed.documentElement, true);
    if (svg.nodeName !== "svg") throw new Error("the graph is not SVG");
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
    put(this.container, svg);
    this.fit();
  }

  fit() {
    if (!this.size) return;
    const box = this.container.getBoundingClientRect();
    const k = Math.min(box.width / this.size.width, box.height / this.size.height, 1.5) * 0.95;
    this.k = k;
    this.x = (box.width - this.size.width * k) / 2;
    this.y = (box.height - this.size.height * k) / 2;
    this.apply();
  }

  zoom(factor, cx, cy) {
    const k = Math.min(Math.max(this.k * factor, 0.05), 8);
    this.x = cx - ((cx - this.x) * k) / this.k;
    this.y = cy - ((cy - this.y) * k) / this.k;
    this.k = k;
    this.apply();
  }

  apply() {
    this.viewport?.setAttribute("transform", `translate(${this.x.toFixed(1)} ${this.y.toFixed(1)}) scale(${this.k.toFixed(4)})`);
  }

  colour(nodes) {
    for (const node of nodes) {
      const element = this.container.querySelector(`g.node[data-node="${node.id}"]`);
      if (!element) continue;
      for (const name of [...element.classList]) if (name.startsWith("status-")) element.classList.remove(name);
      element.classList.add(`status-${node.status}`);
    }
  }

  select(id) {
    for (const element of this.container.querySelectorAll("g.node.selected")) element.classList.remove("selected");
    this.container.querySelector(`g.node[data-node="${id}"]`)?.classList.add("selected");
  }
}

function graphPanel(onSelect) {
  const canvas = h("div", { class: "graph", tabindex: "0", "aria-label": "graph: drag to pan, wheel or +/- to zoom, 0 to fit" });
  const graph = new Graph(canvas, onSelect);
  const centre = () => { const b = canvas.getBoundingClientRect(); return [b.width / 2, b.height / 2]; };
  const tools = h("div", { class: "graph-tools" },
    h("button", { type: "button", title: "Zoom in", onclick: () => graph.zoom(1.25, ...centre()) }, "+"),
    h("button", { type: "button", title: "Zoom out", onclick: () => graph.zoom(0.8, ...centre()) }, "−"),
    h("button", { type: "button", title: "Show all", onclick: () => graph.fit() }, "Fit"),
    h("span", { class: "legend" }, ...["waiting", "queued", "running", "done", "failed", "skipped", "terminated"]
      .map((s) => h("span", { class: `swatch status-${s}` }, s))));
  return { element: h("div", { class: "graph-panel" }, tools, canvas), graph };
}

// -- views -----------------------------------------------------------------------------
function query() {
  const [, search = ""] = location.hash.split("?");
  return new URLSearchParams(search);
}

function setQuery(params) {
  const text = params.toString();
  history.replaceState(null, "", `#/${text ? "?" + text : ""}`);
}

function listView(main, signal) {
  const params = query();
  let state = params.get("state") || "";
  let search = params.get("q") || "";
  let page = Math.max(0, Number(params.get("page")) || 0);

  const tabs = h("div", { class: "tabs", role: "tablist" });
  const box = h("input", { type: "search", placeholder: "Search by id or flow name", value: search, "aria-label": "search" });
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  put(main, h("section", { class: "list" },
    h("div", { class: "toolbar" }, tabs, box),
    h("table", { class: "workflows" },
      h("thead", {}, h("tr", {}, ...["Workflow", "Flow", "State", "Started", "Updated", "Took"].map((t) => h("th", {}, t)))),
      body),
    pager));

  const url = (s, offset, limit) => {
    const p = new URLSearchParams({ offset, limit, order: "newest" });
    if (s) p.set("state", s);
    if (search) p.set("q", search);
    return `workflows?${p}`;
  };

  async function refresh() {
    const shown = json(url(state, page * PAGE, PAGE), { signal });
    const counts = Promise.all(["", ...STATES].map((s) => json(url(s, 0, 1), { signal }).then((r) => r.total)));
    let result, totals;
    try {
      [result, totals] = await Promise.all([shown, counts]);
    } catch (error) {
      if (error.name !== "AbortError" && error.status !== 401) toast(error.message);
      return;
    }
    put(tabs, ...["", ...STATES].map((s, i) => h("button", {
      type: "button", role: "tab", class: s === state ? "active" : "", "aria-selected": String(s === state),
      dataset: { state: s || "all" },
      onclick: () => { state = s; page = 0; update(); },
    }, s || "all", h("span", { class: "count" }, String(totals[i])))));
    put(body, ...result.workflows.map((w) => h("tr", { dataset: { id: w.id } },
      h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.id)}` }, h("code", {}, w.id))),
      h("td", {}, w.name || h("span", { class: "muted" }, "(unnamed)")),
      h("td", {}, badge(w.state)),
      h("td", {}, when(w.created)),
      h("td", {}, when(w.updated)),
      h("td", {}, took(w.created, w.state === "running" ? null : w.updated)))));
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
      h("button", { type: "button", disabled: (page + 1) * PAGE >= total, onclick: () => { page += 1; update(); } }, "Older ›"));
  }

  function update() {
    const p = new URLSearchParams();
    if (state) p.set("state", state);
    if (search) p.set("q", search);
    if (page) p.set("page", page);
    setQuery(p);
    refresh();
  }

  let typing;
  box.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { search = box.value.trim(); page = 0; update(); }, 250);
  });
  refresh();
  const later = throttled(refresh, 1000);
  listen("events", (kind) => { if (kind === "workflow") later(); }, signal);
}

function workflowView(main, signal, id) {
  let doc = null;
  let selected = null;
  const title = h("h1", {});
  const facts = h("dl", { class: "facts" });
  const actions = h("div", { class: "actions admin" });
  const values = h("div", { class: "values" });
  const rows = h("tbody");
  const filter = h("input", { type: "search", placeholder: "Filter nodes by name or status", "aria-label": "filter nodes" });
  const details = h("aside", { class: "details", hidden: true });
  const { element: panel, graph } = graphPanel((node) => select(node));
  put(main, h("section", { class: "workflow" },
    h("div", { class: "head" }, h("div", {}, title, h("code", { class: "id" }, id)), actions),
    facts, panel,
    h("div", { class: "below" },
      h("div", { class: "nodes-box" }, filter,
        h("div", { class: "nodes-scroll" }, h("table", { class: "nodes" },
          h("thead", {}, h("tr", {}, ...["#", "Node", "Status", "Attempt", "Started", "Ended", "Took", "Input", "Output", "Error"]
            .map((t) => h("th", {}, t)))),
          rows))),
      details),
    values));

  const act = (verb, question, text, run, danger = true) => h("button", {
    type: "button", class: danger ? "danger" : "", dataset: { action: verb.toLowerCase() },
    onclick: async () => {
      if (question && !(await confirmAction(question, text, verb))) return;
      try {
        await run();
      } catch (error) {
        toast(error.message);
      }
    },
  }, verb);

  function renderActions() {
    const state = doc.state;
    put(actions,
      state === "running" ? act("Terminate", `Terminate workflow ${id}?`,
        "Nothing new starts and running tasks are told to cancel. It can be resumed later.",
        async () => show(await json(`workflows/${id}/terminate`, { method: "POST" }))) : null,
      ["failed", "terminated"].includes(state) ? act("Resume", `Resume workflow ${id}?`,
        "What failed or was interrupted runs again; what finished does not.",
        async () => show(await json(`workflows/${id}/resume`, { method: "POST" })), false) : null,
      act("Archive", null, null, async () => {
        const blob = await (await request(`workflows/${id}/archive`)).blob();
        const link = h("a", { href: URL.createObjectURL(blob), download: `${id}.json` });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 10000);
        toast(`Archive of ${id} downloaded`, "info");
      }, false),
      state !== "running" ? act("Delete", `Delete workflow ${id}?`,
        "Its state, history and task records are removed for good. Download its archive first to keep them.",
        async () => {
          await request(`workflows/${id}`, { method: "DELETE" });
          toast(`Workflow ${id} deleted`, "info");
          location.hash = "#/";
        }) : null);
  }

  function show(next) {
    const first = doc === null;
    doc = next;
    put(title, doc.name || "(unnamed flow)", " ", badge(doc.state));
    put(facts,
      h("dt", {}, "Started"), h("dd", {}, when(doc.created)),
      h("dt", {}, "Updated"), h("dd", {}, when(doc.updated)),
      h("dt", {}, "Took"), h("dd", { class: "took" }, took(doc.created, doc.state === "running" ? null : doc.updated)),
      h("dt", {}, "Tasks"), h("dd", {}, summary(doc.nodes)));
    put(values,
      h("div", {}, h("h2", {}, "Input"), h("pre", {}, pretty(doc.input))),
      h("div", {}, h("h2", {}, "Output"), h("pre", { class: "output" }, pretty(doc.output))),
      doc.error ? h("div", {}, h("h2", {}, "Error"), h("pre", { class: "error" }, String(doc.error))) : null);
    renderActions();
    graph.colour(doc.nodes);
    const wanted = filter.value.trim().toLowerCase();
    const shown = doc.nodes.filter((n) => !STRUCTURE.includes(n.kind) && (!wanted
      || n.label.toLowerCase().includes(wanted) || n.status.startsWith(wanted)));
    put(rows, ...shown.map((n) => h("tr", {
      class: n.id === selected ? "selected" : "", dataset: { node: n.id, status: n.status },
      onclick: () => select(n.id),
    },
      h("td", {}, String(n.id)),
      h("td", { title: `${n.kind}, line ${n.line} column ${n.column}` }, n.label),
      h("td", {}, badge(n.status)),
      h("td", {}, n.attempt ?? ""),
      h("td", {}, when(n.started)),
      h("td", {}, when(n.ended)),
      h("td", {}, n.started ? took(n.started, n.ended) : ""),
      h("td", { class: "json" }, brief(n.input)),
      h("td", { class: "json" }, brief(n.output)),
      h("td", { class: "error" }, n.error || ""))));
    if (selected !== null) select(selected);
    if (first) document.title = `${doc.name || id} · littleflow`;
  }

  filter.addEventListener("input", () => doc && show(doc));
  const ticking = setInterval(() => {  // a running workflow's age goes on between its changes
    if (doc?.state === "running") $(".took", facts).textContent = took(doc.created, null);
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(ticking));

  function select(nodeId) {
    selected = nodeId;
    graph.select(nodeId);
    for (const row of rows.children) row.classList.toggle("selected", Number(row.dataset.node) === nodeId);
    const node = doc?.nodes.find((n) => n.id === nodeId);
    if (!node) return;
    details.hidden = false;
    put(details,
      h("button", { type: "button", class: "link close", onclick: () => { details.hidden = true; } }, "×"),
      h("h2", {}, node.label, " ", badge(node.status)),
      h("dl", { class: "facts" },
        h("dt", {}, "Kind"), h("dd", {}, node.kind),
        h("dt", {}, "Where"), h("dd", {}, `line ${node.line}, column ${node.column}`),
        node.attempt ? [h("dt", {}, "Attempt"), h("dd", {}, String(node.attempt))] : null,
        node.worker ? [h("dt", {}, "Worker"), h("dd", {}, node.worker)] : null,
        node.started ? [h("dt", {}, "Took"), h("dd", {}, took(node.started, node.ended))] : null),
      node.error ? [h("h3", {}, "Error"), h("pre", { class: "error" }, node.error)] : null,
      node.input !== undefined && node.input !== null ? [h("h3", {}, "Input"), h("pre", {}, pretty(node.input))] : null,
      node.output !== undefined && node.output !== null ? [h("h3", {}, "Output"), h("pre", {}, pretty(node.output))] : null,
      node.note ? [h("h3", {}, "Note"), h("p", {}, node.note)] : null);
  }

  (async () => {
    try {
      const svg = await (await request(`workflows/${id}/graph?format=svg`, { signal, headers: { Accept: "image/svg+xml" } })).text();
      graph.show(svg);
      if (doc) graph.colour(doc.nodes);
    } catch (error) {
      if (error.name === "AbortError") return;
      put(main, h("section", { class: "missing" }, h("h1", {}, "No such workflow"), h("p", {}, error.message),
        h("a", { href: "#/" }, "Back to the workflows")));
    }
  })();
  listen(`workflows/${id}/watch`, (kind, data) => {
    if (kind === "status") show(data);
    else if (kind === "gone") toast(`Workflow ${id} was deleted`, "info");
  }, signal);
}

function summary(nodes) {
  const counts = {};
  for (const node of nodes) if (node.kind === "task") counts[node.status] = (counts[node.status] || 0) + 1;
  return Object.entries(counts).map(([status, n]) => `${n} ${status}`).join(", ") || "none";
}

function newView(main, signal) {
  const flow = h("textarea", { class: "code", rows: "12", spellcheck: "false", "aria-label": "flow text",
    placeholder: "fetch -> { clean -> store  index } -> notify" });
  const file = h("input", { type: "file", accept: ".flow,.txt,.yaml,.yml,text/plain", "aria-label": "flow file" });
  const input = h("textarea", { class: "code", rows: "5", spellcheck: "false", "aria-label": "input JSON" }, "{}");
  const errors = h("ul", { class: "errors" });
  const inputError = h("p", { class: "error" });
  const run = h("button", { type: "submit", class: "primary", disabled: true }, "Run");
  const { element: panel, graph } = graphPanel(null);
  const note = h("p", { class: "muted" }, "The graph appears here as you type.");
  put(main, h("section", { class: "new" },
    h("form", { class: "editor", onsubmit: submit },
      h("h1", {}, "New workflow"),
      h("label", {}, "Flow ", h("span", { class: "muted" }, "— paste it, or "), file),
      flow, errors,
      h("label", {}, "Input (JSON)"), input, inputError,
      h("div", { class: "buttons" }, run, h("span", { class: "muted read-only-note" }, "Running needs an admin token."))),
    h("div", { class: "preview" }, h("h2", {}, "Graph"), note, panel)));

  let compiled = false;
  let version = 0;
  async function preview() {
    const mine = ++version;
    const text = flow.value;
    if (!text.trim()) { put(errors); compiled = false; check(); return; }
    try {
      const response = await request("compile?format=svg", {
        method: "POST", body: text, signal, headers: { "Content-Type": "text/plain", Accept: "image/svg+xml" } });
      const svg = await response.text();
      if (mine !== version) return;
      put(errors);
      note.hidden = true;
      graph.show(svg);
      compiled = true;
    } catch (error) {
      if (error.name === "AbortError" || mine !== version) return;
      compiled = false;
      const found = error.problem?.errors || [{ message: error.message }];
      put(errors, ...found.map((e) => h("li", {
        onclick: () => goTo(e.line, e.column), title: e.line ? "Show it in the flow text" : null,
      }, e.line ? h("span", { class: "where" }, `line ${e.line}, column ${e.column}`) : null, e.line ? ": " : null, e.message)));
    }
    check();
  }

  function goTo(line, column) {
    if (!line) return;
    const lines = flow.value.split("\n");
    const at = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, column - 1);
    flow.focus();
    flow.setSelectionRange(at, Math.min(at + 1, flow.value.length));
  }

  function parsedInput() {
    if (!input.value.trim()) return { ok: true, value: {} };
    try {
      return { ok: true, value: JSON.parse(input.value) };
    } catch (error) {
      return { ok: false, message: `The input is not JSON: ${error.message}` };
    }
  }

  function check() {
    const parsed = parsedInput();
    inputError.textContent = parsed.ok ? "" : parsed.message;
    run.disabled = !compiled || !parsed.ok || session.scope === "read";
  }

  async function submit(event) {
    event.preventDefault();
    const parsed = parsedInput();
    if (!parsed.ok) return;
    run.disabled = true;
    try {
      const created = await json("workflows", { method: "POST", body: { flow: flow.value, input: parsed.value } });
      location.hash = `#/workflows/${encodeURIComponent(created.id)}`;
    } catch (error) {
      toast(error.message);
      check();
    }
  }

  let typing;
  flow.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(preview, 300); });
  input.addEventListener("input", check);
  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    if (!chosen) return;
    flow.value = await chosen.text();
    preview();
  });
}

let signingIn = false;
function signIn(error) {
  if (signingIn) return;
  signingIn = true;
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
      signingIn = false;
      await started();
      location.hash = next;
      route();
    } catch (failure) {
      message.textContent = failure.status === 401 ? "That token was refused." : failure.message;
    }
  });
  current?.abort();
  history.replaceState(null, "", "#/sign-in");
  put($("#main"), form);
  token.focus();
}

// -- routing ---------------------------------------------------------------------------
let current = null;

function route() {
  if (signingIn) return;
  current?.abort();
  current = new AbortController();
  const main = $("#main");
  const [path] = location.hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", (parts[0] || "list") === link.dataset.nav || (parts[0] === "workflows" && link.dataset.nav === "list"));
  }
  document.title = "littleflow";
  if (parts[0] === "workflows" && parts[1]) workflowView(main, current.signal, decodeURIComponent(parts[1]));
  else if (parts[0] === "new") newView(main, current.signal);
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
    put($("#main"), h("section", { class: "missing" }, h("h1", {}, "The API does not answer"), h("p", {}, error.message)));
  }
}
