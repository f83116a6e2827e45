// storycore-tasks dashboard: the tasks this token may see, live.
//
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. Task data is
// only ever written with textContent and setAttribute (never innerHTML), so an operation
// name like "<img onerror=...>" shows as text. Rows are kept in a Map by task id: no task
// id is ever put into a CSS selector.
//
// Live updates come from GET /v1/events (Server-Sent Events). While that stream is not
// open (not served, reconnecting, refused) the page polls GET /v1/tasks every 2 s.
"use strict";

(() => {
  const TOKEN_KEY = "storycore-tasks.token";
  const POLL_MS = 2000;
  const STREAM_RETRY_MS = 30000; // a stream the server refused (e.g. 404) is tried again
  const PAGE_LIMIT = 1000;
  const MAX_PAGES = 20;
  const STATES = ["pending", "running", "completed", "failed", "cancelled"];
  const ACTIVE = new Set(["pending", "running"]);
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const EVENT_KINDS = [
    "created", "started", "progress", "retry_scheduled", "completed", "failed", "cancelled",
  ];

  const $ = (id) => document.getElementById(id);
  const el = {};

  const rows = new Map(); // task id -> {tr, cells, task, version, touched}
  let token = null;
  let noAuth = false;
  let generation = 0; // bumped on sign-in/out: late answers of an older session are dropped
  let source = null;
  let streamRetry = null;
  let pollTimer = null;
  let loading = null;
  let skewMs = 0; // client clock minus server clock
  // Orders what the page learns: each request for task statuses and each progress event
  // applied takes the next number, and a row takes an answer only from a request made
  // after the last thing it applied. (The service's timestamps cannot order them: a
  // task's last progress event can carry a later time than its completion.)
  let sequence = 0;
  const refetching = new Map(); // task id -> "busy" | "again"

  class AuthError extends Error {}

  // -- HTTP ------------------------------------------------------------------------------

  async function api(method, path) {
    const headers = { Accept: "application/json" };
    if (token && !noAuth) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { method, headers, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    const stamp = body && body.metadata && Date.parse(body.metadata.timestamp);
    if (stamp) skewMs = Date.now() - stamp;
    if (response.status === 401) throw new AuthError(errorMessage(body, "token rejected"));
    return { status: response.status, body };
  }

  function errorMessage(body, fallback) {
    return (body && body.error && body.error.message) || fallback;
  }

  // -- sign-in ---------------------------------------------------------------------------

  async function start() {
    try {
      const probe = await fetch("/v1/stats", { headers: { Accept: "application/json" } });
      noAuth = probe.ok;
    } catch (_) {
      noAuth = false;
    }
    if (noAuth) {
      el.who.textContent = "authentication off";
      begin();
      return;
    }
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      await signIn(saved);
    } else {
      showLogin("");
    }
  }

  async function signIn(candidate) {
    token = candidate;
    el.tokenSubmit.disabled = true;
    try {
      const { status, body } = await api("GET", "/v1/stats");
      if (status !== 200) throw new Error(errorMessage(body, "HTTP " + status));
      sessionStorage.setItem(TOKEN_KEY, candidate);
      el.who.textContent = "signed in";
      el.signOut.hidden = false;
      begin();
    } catch (error) {
      token = null;
      if (error instanceof AuthError) sessionStorage.removeItem(TOKEN_KEY);
      showLogin(
        error instanceof AuthError
          ? "That token is not valid."
          : "Could not reach the service: " + error.message,
      );
    } finally {
      el.tokenSubmit.disabled = false;
    }
  }

  function showLogin(message) {
    stop();
    el.tasks.hidden = true;
    el.signOut.hidden = true;
    el.who.textContent = "";
    el.login.hidden = false;
    el.loginError.hidden = !message;
    el.loginError.textContent = message;
    setConnection("idle", "not connected");
    el.tokenInput.value = "";
    el.tokenInput.focus();
  }

  function signOut(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(message);
  }

  function begin() {
    generation += 1;
    el.login.hidden = true;
    el.tasks.hidden = false;
    setConnection("idle", "connecting\u2026");
    clearRows();
    loadAll();
    openStream();
  }

  function stop() {
    generation += 1;
    closeStream();
    stopPolling();
    refetching.clear();
    clearRows();
  }

  function authFailed(error) {
    if (noAuth) return;
    signOut("The token was rejected (" + error.message + "); sign in again.");
  }

  // -- loading ---------------------------------------------------------------------------

  function loadAll() {
    if (loading !== null && loading.generation === generation) return loading.promise;
    const mine = generation;
    const startedAt = performance.now();
    const current = { generation: mine, promise: null };
    loading = current;
    current.promise = (async () => {
      try {
        const seen = new Set();
        let cursor = null;
        for (let page = 0; page < MAX_PAGES; page += 1) {
          let path = "/v1/tasks?limit=" + PAGE_LIMIT;
          if (cursor) path += "&cursor=" + encodeURIComponent(cursor);
          const issued = ++sequence;
          const { status, body } = await api("GET", path);
          if (mine !== generation) return;
          if (status !== 200) throw new Error(errorMessage(body, "HTTP " + status));
          for (const task of body.data.tasks) {
            seen.add(task.task_id);
            upsert(task, issued);
          }
          cursor = body.data.next_cursor;
          if (!cursor) break;
        }
        // Tasks the service no longer lists (cleaned up) go, unless an event touched them
        // after this listing started.
        for (const [id, row] of rows) {
          if (!seen.has(id) && row.touched < startedAt) removeRow(id);
        }
        showError("");
        if (pollTimer !== null) setConnection("polling", "polling every 2 s");
      } catch (error) {
        if (mine !== generation) return;
        if (error instanceof AuthError) {
          authFailed(error);
          return;
        }
        setConnection("offline", "offline");
        showError("Could not load the tasks: " + error.message);
      } finally {
        if (loading === current) loading = null;
        if (mine === generation) render();
      }
    })();
    return current.promise;
  }

  function refetch(id) {
    if (refetching.has(id)) {
      refetching.set(id, "again");
      return;
    }
    refetching.set(id, "busy");
    const mine = generation;
    (async () => {
      try {
        const issued = ++sequence;
        const { status, body } = await api("GET", "/v1/tasks/" + encodeURIComponent(id));
        if (mine !== generation) return;
        if (status === 200) upsert(body.data, issued);
        else if (status === 404) removeRow(id);
        render();
      } catch (error) {
        if (mine !== generation) return;
        if (error instanceof AuthError) authFailed(error);
      } finally {
        if (mine === generation) {
          const again = refetching.get(id) === "again";
          refetching.delete(id);
          if (again) refetch(id);
        }
      }
    })();
  }

  async function cancelTask(id, button) {
    button.disabled = true;
    const mine = generation;
    try {
      const path = "/v1/tasks/" + encodeURIComponent(id) + "/cancel";
      const { status, body } = await api("POST", path);
      if (mine !== generation) return;
      if (status !== 200 && status !== 409) {
        showError("Could not cancel " + id + ": " + errorMessage(body, "HTTP " + status));
        button.disabled = false;
      }
      refetch(id);
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof AuthError) {
        authFailed(error);
        return;
      }
      showError("Could not cancel " + id + ": " + error.message);
      button.disabled = false;
    }
  }

  // -- the event stream, and polling while it is not open --------------------------------

  function openStream() {
    closeStream();
    if (typeof EventSource === "undefined") {
      startPolling();
      return;
    }
    let url = "/v1/events";
    if (token && !noAuth) url += "?access_token=" + encodeURIComponent(token);
    const stream = new EventSource(url);
    source = stream;
    const mine = generation;
    stream.onopen = () => {
      if (mine !== generation) return;
      stopPolling();
      setConnection("live", "live");
      loadAll(); // whatever happened before the stream opened
    };
    stream.onerror = () => {
      if (mine !== generation) return;
      setConnection("polling", "polling every 2 s");
      startPolling();
      if (stream.readyState === EventSource.CLOSED) {
        // Refused (not served, 401, 503): the browser gives up; try again later.
        source = null;
        streamRetry = setTimeout(() => {
          streamRetry = null;
          if (mine === generation) openStream();
        }, STREAM_RETRY_MS);
      }
    };
    const handler = (message) => {
      if (mine === generation) onEvent(message);
    };
    for (const kind of EVENT_KINDS) stream.addEventListener(kind, handler);
    stream.onmessage = handler;
    // Events were missed (resumed too late, or the service restarted): reload the list.
    stream.addEventListener("reset", () => {
      if (mine === generation) loadAll();
    });
  }

  function closeStream() {
    if (streamRetry !== null) {
      clearTimeout(streamRetry);
      streamRetry = null;
    }
    if (source !== null) {
      source.close();
      source = null;
    }
  }

  function startPolling() {
    if (pollTimer !== null) return;
    pollTimer = setInterval(loadAll, POLL_MS);
    loadAll();
  }

  function stopPolling() {
    if (pollTimer !== null) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  function onEvent(message) {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if (!data || typeof data.task_id !== "string") return;
    const id = data.task_id;
    const kind = String(data.kind || message.type || "").replace(/^task\./, "");
    const row = rows.get(id);
    if (kind === "progress" && row && !TERMINAL.has(row.task.status)) {
      if (typeof data.progress === "number") {
        row.task.progress = data.progress;
        row.version = ++sequence; // answers to earlier requests are older than this
        row.touched = performance.now();
        fill(row);
      }
      if (row.task.status === "running") return;
    }
    refetch(id); // any other event: the task's status as it is now
  }

  // -- the table -------------------------------------------------------------------------

  function timeMs(value) {
    // ISO 8601 (the status dicts), or seconds since the epoch.
    if (typeof value === "number") return value * 1000;
    if (typeof value === "string") return Date.parse(value);
    return NaN;
  }

  function sortKey(task) {
    return [timeMs(task.created_at) || 0, task.task_id];
  }

  function newerFirst(a, b) {
    const [ta, ia] = sortKey(a);
    const [tb, ib] = sortKey(b);
    if (ta !== tb) return tb - ta;
    return ia < ib ? 1 : ia > ib ? -1 : 0;
  }

  function upsert(task, issued) {
    if (!task || typeof task.task_id !== "string") return;
    let row = rows.get(task.task_id);
    if (row) {
      const stale = issued <= row.version;
      const reopened = TERMINAL.has(row.task.status) && !TERMINAL.has(task.status);
      if (stale || reopened) return;
      row.task = task;
    } else {
      row = makeRow(task);
      rows.set(task.task_id, row);
      insertSorted(row);
    }
    row.version = issued;
    row.touched = performance.now();
    fill(row);
  }

  function insertSorted(row) {
    for (const other of el.rows.children) {
      const existing = rows.get(other.dataset.taskId);
      if (existing && newerFirst(row.task, existing.task) < 0) {
        el.rows.insertBefore(row.tr, other);
        return;
      }
    }
    el.rows.appendChild(row.tr);
  }

  function cell(tr, field, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.dataset.field = field;
    tr.appendChild(td);
    return td;
  }

  function makeRow(task) {
    const tr = document.createElement("tr");
    tr.dataset.taskId = task.task_id;

    const idCell = cell(tr, "id", "mono");
    const code = document.createElement("code");
    code.textContent = task.task_id.slice(0, 8);
    code.title = task.task_id;
    idCell.appendChild(code);

    const stateCell = document.createElement("td");
    const state = document.createElement("span");
    state.className = "state";
    state.dataset.field = "state";
    stateCell.appendChild(state);
    tr.appendChild(stateCell);

    const operation = cell(tr, "operation", "operation");
    const owner = cell(tr, "owner", "owner");

    const progressCell = document.createElement("td");
    const wrap = document.createElement("div");
    wrap.className = "progress-cell";
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.dataset.field = "progress";
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const pct = document.createElement("span");
    pct.className = "pct";
    wrap.append(bar, pct);
    progressCell.appendChild(wrap);
    tr.appendChild(progressCell);

    const age = cell(tr, "age", "age");

    const actions = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = "cancel";
    button.textContent = "Cancel";
    button.addEventListener("click", () => cancelTask(task.task_id, button));
    actions.appendChild(button);
    tr.appendChild(actions);

    return {
      tr,
      task,
      version: 0,
      touched: 0,
      cells: { state, operation, owner, bar, pct, age, button },
    };
  }

  function fill(row) {
    const { task, cells, tr } = row;
    const status = STATES.includes(task.status) ? task.status : String(task.status);
    tr.dataset.state = status;
    cells.state.textContent = status;
    cells.state.dataset.state = status;
    cells.operation.textContent = task.operation == null ? "(function)" : String(task.operation);
    cells.owner.textContent = task.user == null ? "\u2014" : String(task.user);
    let fraction = Number(task.progress);
    if (!Number.isFinite(fraction)) fraction = 0;
    if (status === "completed") fraction = Math.max(fraction, 1);
    fraction = Math.min(1, Math.max(0, fraction));
    const percent = Math.round(fraction * 100);
    cells.bar.value = fraction;
    cells.bar.setAttribute("aria-valuenow", String(percent));
    cells.bar.setAttribute("aria-label", "progress of task " + task.task_id.slice(0, 8));
    cells.pct.textContent = percent + "%";
    const cancellable = ACTIVE.has(status);
    cells.button.hidden = !cancellable;
    if (!cancellable) cells.button.disabled = false;
    fillAge(row);
    applyFilter(row);
  }

  function fillAge(row) {
    const created = timeMs(row.task.created_at);
    if (Number.isNaN(created)) {
      row.cells.age.textContent = "";
      return;
    }
    const seconds = Math.max(0, Math.floor((Date.now() - skewMs - created) / 1000));
    row.cells.age.textContent = formatAge(seconds);
    row.cells.age.title = new Date(created).toISOString();
  }

  function formatAge(seconds) {
    if (seconds < 60) return seconds + "s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m " + (seconds % 60) + "s";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + "h " + (minutes % 60) + "m";
    return Math.floor(hours / 24) + "d " + (hours % 24) + "h";
  }

  function applyFilter(row) {
    const wanted = el.filter.value;
    row.tr.hidden = wanted !== "all" && row.task.status !== wanted;
  }

  function removeRow(id) {
    const row = rows.get(id);
    if (!row) return;
    row.tr.remove();
    rows.delete(id);
  }

  function clearRows() {
    rows.clear();
    el.rows.replaceChildren();
    render();
  }

  function render() {
    let shown = 0;
    for (const row of rows.values()) {
      applyFilter(row);
      if (!row.tr.hidden) shown += 1;
    }
    const total = rows.size;
    el.count.textContent =
      el.filter.value === "all" ? total + " tasks" : shown + " of " + total + " tasks";
    el.empty.hidden = shown > 0;
  }

  function showError(message) {
    el.error.hidden = !message;
    el.error.textContent = message;
  }

  function setConnection(state, text) {
    el.connection.dataset.state = state;
    el.connection.textContent = text;
  }

  // -- wiring ----------------------------------------------------------------------------

  function init() {
    el.who = $("who");
    el.connection = $("connection");
    el.signOut = $("sign-out");
    el.login = $("login");
    el.loginForm = $("login-form");
    el.tokenInput = $("token-input");
    el.tokenSubmit = $("token-submit");
    el.loginError = $("login-error");
    el.tasks = $("tasks");
    el.filter = $("state-filter");
    el.count = $("task-count");
    el.error = $("error");
    el.rows = $("task-rows");
    el.empty = $("empty");

    el.loginForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = el.tokenInput.value.trim();
      if (value) signIn(value);
    });
    el.signOut.addEventListener("click", () => signOut(""));
    el.filter.addEventListener("change", render);
    setInterval(() => {
      for (const row of rows.values()) fillAge(row);
    }, 1000);
    document.body.dataset.ready = "true";
    start();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
