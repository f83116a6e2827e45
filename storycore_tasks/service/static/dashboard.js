// storycore-tasks dashboard: the tasks this token may see, live, and what happened to each.
//
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. Task data is
// only ever written with textContent and setAttribute (never innerHTML), so an operation
// name, a param or a result like "<img onerror=...>" shows as text. Rows are kept in a
// Map by task id: no task id is ever put into a CSS selector or markup.
//
// Live updates come from GET /v1/events (Server-Sent Events). While that stream is not
// open (not served, reconnecting, refused) the page polls GET /v1/tasks every 2 s. While
// the service cannot be reached the rows are marked stale and cancelling is off.
//
// Views (hash routing, so a link opens one and the back button works):
//   #/             the task list: state filters with counts, search, order, pages, chart
//   #/tasks/<id>   one task: its error and remedy, result, params, timings, attempts...
"use strict";

(() => {
  const TOKEN_KEY = "storycore-tasks.token";
  const POLL_MS = 2000;
  const STREAM_RETRY_MS = 30000; // a stream the server refused (e.g. 404) is tried again
  const PAGE_LIMIT = 1000; // tasks per GET /v1/tasks request
  const MAX_PAGES = 20;
  const PAGE_SIZE = 50; // rows shown per page of the table
  const RENDER_DELAY_MS = 30; // bursts of events become one render
  const REFETCH_DELAY_MS = 40;
  const BULK_REFETCH = 10; // more tasks changed at once than this: reload the list instead
  const BUCKET_MS = 5000; // the chart's time step
  const BUCKETS = 60; // ... and how many it shows (5 minutes)
  const STATES = ["pending", "running", "completed", "failed", "cancelled"];
  const ACTIVE = new Set(["pending", "running"]);
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const ENDED_KINDS = ["completed", "failed", "cancelled"];
  const EVENT_KINDS = [
    "created", "started", "progress", "retry_scheduled", "completed", "failed", "cancelled",
  ];
  const ISOLATION = {
    thread: "thread: a pooled thread of the service's process",
    process: "process: a child process of the service",
    async: "async: the service's event loop",
    ray: "ray: a node of the Ray cluster",
  };
  const TASK_ROUTE = /^#\/tasks\/([^/?#]+)$/;

  const $ = (id) => document.getElementById(id);
  const el = {};

  const rows = new Map(); // task id -> {tr, cells, task, version, touched}
  const view = { filter: "all", search: "", sort: "active", page: 0 };
  let route = null; // the task id of the detail view, or null for the list
  let detailMissing = null; // why the detail's task cannot be shown, once known
  let detailKey = null; // what the detail view shows now
  let listScroll = 0;
  let signedIn = false;
  let token = null;
  let noAuth = false;
  let generation = 0; // bumped on sign-in/out: late answers of an older session are dropped
  let source = null;
  let streamRetry = null;
  let pollTimer = null;
  let loading = null;
  let renderTimer = null;
  let refetchTimer = null;
  let skewMs = 0; // client clock minus server clock
  let reachable = true;
  let confirmFor = null; // the task id the cancel dialog asks about
  // Orders what the page learns: each request for task statuses and each progress event
  // applied takes the next number, and a row takes an answer only from a request made
  // after the last thing it applied. (The service's timestamps cannot order them: a
  // task's last progress event can carry a later time than its completion.)
  let sequence = 0;
  const refetching = new Map(); // task id -> "busy" | "again"
  const queued = new Set(); // task ids to refetch at the next flush
  const cancelling = new Set(); // task ids whose cancel request is on its way
  // The chart: tasks ended per time bucket (by kind) and the state counts seen in each.
  const chart = { ended: new Map(), states: new Map(), seen: new Map() };

  class AuthError extends Error {}
  class Unreachable extends Error {}

  // -- HTTP ------------------------------------------------------------------------------

  async function api(method, path) {
    const headers = { Accept: "application/json" };
    if (token && !noAuth) headers.Authorization = "Bearer " + token;
    let response;
    try {
      response = await fetch(path, { method, headers, cache: "no-store" });
    } catch (error) {
      throw new Unreachable(error.message || "network error");
    }
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
    noAuth = false;
    try {
      const probe = await fetch("/v1/whoami", { headers: { Accept: "application/json" } });
      if (probe.ok) {
        const body = await probe.json();
        noAuth = !(body && body.data && body.data.authentication);
      }
    } catch (_) {
      noAuth = false;
    }
    if (noAuth) {
      el.who.textContent = "authentication off";
      el.who.title = "the service runs with --no-auth: everyone is an admin";
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
      const { status, body } = await api("GET", "/v1/whoami");
      if (status !== 200) throw new Error(errorMessage(body, "HTTP " + status));
      sessionStorage.setItem(TOKEN_KEY, candidate);
      showWho(body.data);
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

  function showWho(who) {
    const user = who && who.user != null ? String(who.user) : "?";
    const role = who && who.role != null ? String(who.role) : "?";
    el.who.textContent = "signed in as " + user + " (" + role + ")";
    el.who.title =
      role === "admin" ? "an admin sees every task" : "a user sees only the tasks they created";
    el.who.dataset.user = user;
    el.who.dataset.role = role;
  }

  function showLogin(message) {
    stop();
    signedIn = false;
    el.tasks.hidden = true;
    el.detail.hidden = true;
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
    signedIn = true;
    el.login.hidden = true;
    setConnection("idle", "connecting\u2026");
    setReachable(true);
    clearRows();
    applyRoute();
    loadAll(true);
    openStream();
  }

  function stop() {
    generation += 1;
    closeStream();
    stopPolling();
    refetching.clear();
    queued.clear();
    cancelling.clear();
    if (refetchTimer !== null) {
      clearTimeout(refetchTimer);
      refetchTimer = null;
    }
    closeConfirm();
    setReachable(true);
    clearRows();
  }

  function authFailed(error) {
    if (noAuth) return;
    signOut("The token was rejected (" + error.message + "); sign in again.");
  }

  // -- loading ---------------------------------------------------------------------------

  // Reload every task. ``fresh``: the caller learned of changes after a load in flight
  // began, so that load is followed by another one.
  function loadAll(fresh) {
    if (loading !== null && loading.generation === generation) {
      if (fresh) loading.again = true;
      return loading.promise;
    }
    const mine = generation;
    const startedAt = performance.now();
    const current = { generation: mine, promise: null, again: false };
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
        // after this listing started (or the detail view fetched it on its own).
        for (const [id, row] of rows) {
          if (!seen.has(id) && row.touched < startedAt && id !== route) removeRow(id);
        }
        showError("");
        setReachable(true);
        if (pollTimer !== null) setConnection("polling", "polling every 2 s");
      } catch (error) {
        if (mine !== generation) return;
        if (error instanceof AuthError) {
          authFailed(error);
          return;
        }
        setConnection("offline", "offline");
        if (error instanceof Unreachable) {
          showError("");
          setReachable(false, "The service cannot be reached");
        } else {
          showError("Could not load the tasks: " + error.message);
          setReachable(false, "The service could not list the tasks (" + error.message + ")");
        }
      } finally {
        if (loading === current) loading = null;
        if (mine === generation) {
          scheduleRender();
          if (current.again) loadAll(false);
        }
      }
    })();
    return current.promise;
  }

  // Refetch a task soon; many at once (hundreds of tasks created together) become one
  // reload of the list instead of a request each.
  function queueRefetch(id) {
    queued.add(id);
    if (refetchTimer === null) refetchTimer = setTimeout(flushRefetches, REFETCH_DELAY_MS);
  }

  function flushRefetches() {
    refetchTimer = null;
    const ids = [...queued];
    queued.clear();
    if (ids.length > BULK_REFETCH) {
      loadAll(true);
      return;
    }
    for (const id of ids) refetch(id);
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
        if (status === 200) {
          upsert(body.data, issued);
          if (id === route) detailMissing = null;
        } else if (status === 404) {
          removeRow(id);
          if (id === route) {
            detailMissing =
              "No task " + id + " here: it does not exist, was cleaned up, or is another " +
              "user's.";
          }
        } else if (id === route && !rows.has(id)) {
          detailMissing = "Could not load the task: " + errorMessage(body, "HTTP " + status);
        }
        scheduleRender();
      } catch (error) {
        if (mine !== generation) return;
        if (error instanceof AuthError) authFailed(error);
        else if (error instanceof Unreachable) loadAll(false); // marks the rows stale
      } finally {
        if (mine === generation) {
          const again = refetching.get(id) === "again";
          refetching.delete(id);
          if (again) refetch(id);
        }
      }
    })();
  }

  async function cancelTask(id) {
    if (!reachable || cancelling.has(id)) return;
    cancelling.add(id);
    refreshRow(id);
    const mine = generation;
    try {
      const path = "/v1/tasks/" + encodeURIComponent(id) + "/cancel";
      const { status, body } = await api("POST", path);
      if (mine !== generation) return;
      if (status !== 200 && status !== 409) {
        showError("Could not cancel " + id + ": " + errorMessage(body, "HTTP " + status));
      }
      refetch(id);
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof AuthError) {
        authFailed(error);
        return;
      }
      showError("Could not cancel " + id + ": " + error.message);
      if (error instanceof Unreachable) loadAll(false);
    } finally {
      if (mine === generation) {
        cancelling.delete(id);
        refreshRow(id);
      }
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
      loadAll(true); // whatever happened before the stream opened
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
      if (mine === generation) loadAll(true);
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
    pollTimer = setInterval(() => loadAll(false), POLL_MS);
    loadAll(false);
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
    if (TERMINAL.has(kind)) noteEnded(id, kind, serverTimeMs(data.at));
    const row = rows.get(id);
    if (kind === "progress" && row && !TERMINAL.has(row.task.status)) {
      if (typeof data.progress === "number") {
        row.task = Object.assign({}, row.task, { progress: data.progress });
        row.version = ++sequence; // answers to earlier requests are older than this
        row.touched = performance.now();
        fill(row);
        if (id === route) scheduleRender();
      }
      if (row.task.status === "running") return;
    }
    queueRefetch(id); // any other event: the task's status as it is now
  }

  // -- time ------------------------------------------------------------------------------

  function timeMs(value) {
    // ISO 8601 (the status dicts), or seconds since the epoch.
    if (typeof value === "number") return value * 1000;
    if (typeof value === "string") return Date.parse(value);
    return NaN;
  }

  function serverTimeMs(value) {
    // A time of the service's clock, on this page's clock.
    return timeMs(value) + skewMs;
  }

  function serverNowMs() {
    return Date.now() - skewMs;
  }

  function formatAge(seconds) {
    if (seconds < 60) return seconds + "s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m " + (seconds % 60) + "s";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + "h " + (minutes % 60) + "m";
    return Math.floor(hours / 24) + "d " + (hours % 24) + "h";
  }

  function formatDuration(ms) {
    if (!Number.isFinite(ms)) return "";
    const value = Math.max(0, ms);
    if (value < 1000) return Math.round(value) + " ms";
    if (value < 10000) return (value / 1000).toFixed(2) + " s";
    if (value < 60000) return (value / 1000).toFixed(1) + " s";
    return formatAge(Math.floor(value / 1000));
  }

  function formatTime(value) {
    const ms = timeMs(value);
    if (Number.isNaN(ms)) return "";
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function clockTime(ms) {
    return new Date(ms).toTimeString().slice(0, 8);
  }

  // -- the table -------------------------------------------------------------------------

  // Creation times to the microsecond, as the service gives them (Date.parse stops at
  // the millisecond, and tasks created in one millisecond must keep their order).
  function timeKey(value) {
    const ms = timeMs(value);
    if (Number.isNaN(ms)) return 0;
    const fraction = typeof value === "string" ? /\.\d{3}(\d{1,3})/.exec(value) : null;
    return ms * 1000 + (fraction ? Number(fraction[1].padEnd(3, "0")) : 0);
  }

  function newerFirst(a, b) {
    const ta = timeKey(a.task.created_at);
    const tb = timeKey(b.task.created_at);
    if (ta !== tb) return tb - ta;
    const ia = a.task.task_id;
    const ib = b.task.task_id;
    return ia < ib ? 1 : ia > ib ? -1 : 0;
  }

  const RANK = { running: 0, pending: 1 };
  const ORDERS = {
    // Running tasks first, then pending ones, then those that ended; newest first in each.
    active: (a, b) => (RANK[a.task.status] ?? 2) - (RANK[b.task.status] ?? 2) || newerFirst(a, b),
    newest: newerFirst,
    oldest: (a, b) => newerFirst(b, a),
  };

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
    }
    row.version = issued;
    row.touched = performance.now();
    if (TERMINAL.has(task.status)) {
      noteEnded(task.task_id, task.status, serverTimeMs(task.ended_at));
    }
    fill(row);
    scheduleRender();
  }

  function taskHash(id) {
    return "#/tasks/" + encodeURIComponent(id);
  }

  function cell(tr, field, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.dataset.field = field;
    td.dataset.label = field;
    tr.appendChild(td);
    return td;
  }

  function makeRow(task) {
    const id = task.task_id;
    const tr = document.createElement("tr");
    tr.dataset.taskId = id;
    tr.className = "task-row";
    // A click anywhere on the row (but its link and button) opens the task.
    tr.addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      if (String(window.getSelection())) return; // selecting text is not a click on the row
      location.hash = taskHash(id);
    });

    const idCell = cell(tr, "id", "mono");
    const link = document.createElement("a");
    link.href = taskHash(id);
    link.title = "details of task " + id;
    const code = document.createElement("code");
    code.textContent = id.slice(0, 8);
    link.appendChild(code);
    idCell.appendChild(link);

    const stateCell = document.createElement("td");
    stateCell.className = "state-cell";
    const state = document.createElement("span");
    state.className = "state";
    state.dataset.field = "state";
    const errorCode = document.createElement("span");
    errorCode.className = "code";
    errorCode.dataset.field = "error-code";
    stateCell.append(state, errorCode);
    tr.appendChild(stateCell);

    const operation = cell(tr, "operation", "operation");
    const owner = cell(tr, "owner", "owner");

    const progressCell = document.createElement("td");
    progressCell.className = "progress-td";
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
    actions.className = "actions";
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = "cancel";
    button.textContent = "Cancel";
    button.addEventListener("click", () => askCancel(id));
    actions.appendChild(button);
    tr.appendChild(actions);

    return {
      tr,
      task,
      version: 0,
      touched: 0,
      cells: { state, errorCode, operation, owner, bar, pct, age, button },
    };
  }

  function statusOf(task) {
    return STATES.includes(task.status) ? task.status : String(task.status);
  }

  // The error code, where it says more than the state ("failed TIMEOUT", not
  // "cancelled CANCELLED").
  function shownCode(task) {
    const code = task.error && task.error.code != null ? String(task.error.code) : "";
    return code && code !== String(task.status).toUpperCase() ? code : "";
  }

  function progressOf(task) {
    let fraction = Number(task.progress);
    if (!Number.isFinite(fraction)) fraction = 0;
    if (task.status === "completed") fraction = Math.max(fraction, 1);
    return Math.min(1, Math.max(0, fraction));
  }

  function fill(row) {
    const { task, cells, tr } = row;
    const status = statusOf(task);
    tr.dataset.state = status;
    tr.dataset.stale = String(!reachable);
    cells.state.textContent = status;
    cells.state.dataset.state = status;
    const code = shownCode(task);
    cells.errorCode.textContent = code;
    cells.errorCode.hidden = !code;
    cells.errorCode.title = code && task.error.message != null ? String(task.error.message) : "";
    cells.operation.textContent = task.operation == null ? "(function)" : String(task.operation);
    cells.owner.textContent = task.user == null ? "\u2014" : String(task.user);
    const fraction = progressOf(task);
    const percent = Math.round(fraction * 100);
    cells.bar.value = fraction;
    cells.bar.setAttribute("aria-valuenow", String(percent));
    cells.bar.setAttribute("aria-label", "progress of task " + task.task_id.slice(0, 8));
    cells.pct.textContent = percent + "%";
    fillCancel(cells.button, task);
    fillAge(row);
  }

  function fillCancel(button, task) {
    button.hidden = !ACTIVE.has(task.status);
    button.disabled = !reachable || cancelling.has(task.task_id);
    button.title = reachable ? "" : "The service cannot be reached: cancelling is off";
  }

  function refreshRow(id) {
    const row = rows.get(id);
    if (row) fill(row);
    if (id === route) scheduleRender();
  }

  function fillAge(row) {
    const created = timeMs(row.task.created_at);
    if (Number.isNaN(created)) {
      row.cells.age.textContent = "";
      return;
    }
    const seconds = Math.max(0, Math.floor((serverNowMs() - created) / 1000));
    row.cells.age.textContent = formatAge(seconds);
    row.cells.age.title = new Date(created).toISOString();
  }

  function matches(task, query) {
    if (!query) return true;
    const fields = [task.task_id, task.operation, task.user];
    return fields.some((value) => value != null && String(value).toLowerCase().includes(query));
  }

  function removeRow(id) {
    const row = rows.get(id);
    if (!row) return;
    row.tr.remove();
    rows.delete(id);
    scheduleRender();
  }

  function clearRows() {
    rows.clear();
    chart.ended.clear();
    chart.states.clear();
    chart.seen.clear();
    el.rows.replaceChildren();
    render();
  }

  function scheduleRender() {
    if (renderTimer === null) renderTimer = setTimeout(render, RENDER_DELAY_MS);
  }

  function render() {
    if (renderTimer !== null) {
      clearTimeout(renderTimer);
      renderTimer = null;
    }
    const query = view.search.trim().toLowerCase();
    const counts = { all: 0 };
    for (const state of STATES) counts[state] = 0;
    const wanted = [];
    for (const row of rows.values()) {
      if (!matches(row.task, query)) continue;
      counts.all += 1;
      if (row.task.status in counts) counts[row.task.status] += 1;
      if (view.filter === "all" || row.task.status === view.filter) wanted.push(row);
    }
    wanted.sort(ORDERS[view.sort] || ORDERS.active);
    const pages = Math.max(1, Math.ceil(wanted.length / PAGE_SIZE));
    view.page = Math.min(Math.max(0, view.page), pages - 1);
    const first = view.page * PAGE_SIZE;
    const shown = wanted.slice(first, first + PAGE_SIZE);
    for (const row of shown) fillAge(row);
    showRows(shown.map((row) => row.tr));

    for (const button of el.filters) {
      const state = button.dataset.filter;
      button.querySelector(".count").textContent = String(counts[state] ?? 0);
      button.setAttribute("aria-pressed", String(state === view.filter));
    }
    const total = rows.size;
    const narrowed = view.filter !== "all" || query !== "";
    const noun = total === 1 ? " task" : " tasks";
    el.count.textContent = narrowed ? wanted.length + " of " + total + noun : total + noun;
    el.pageInfo.textContent = wanted.length
      ? first + 1 + "\u2013" + (first + shown.length) + " of " + wanted.length
      : "";
    el.pager.hidden = pages <= 1;
    el.prev.disabled = view.page === 0;
    el.next.disabled = view.page >= pages - 1;
    el.empty.hidden = shown.length > 0;
    el.empty.textContent = total > 0 ? "No task matches." : "No tasks.";
    sampleStates();
    drawChart();
    renderDetail();
  }

  // Put exactly ``wanted`` in the table body, in order, moving nothing that is in place
  // (a focused button keeps its focus while other rows change).
  function showRows(wanted) {
    const current = el.rows.children;
    let same = current.length === wanted.length;
    for (let i = 0; same && i < wanted.length; i += 1) same = current[i] === wanted[i];
    if (!same) el.rows.replaceChildren(...wanted);
  }

  function showError(message) {
    el.error.hidden = !message;
    el.error.textContent = message;
  }

  function setConnection(state, text) {
    el.connection.dataset.state = state;
    el.connection.textContent = text;
  }

  // While the service cannot be reached every row is its last known state: marked
  // stale, and nothing can be cancelled (the request could not be sent anyway).
  function setReachable(ok, why) {
    if (ok === reachable) return;
    reachable = ok;
    document.body.dataset.stale = String(!ok);
    el.staleBanner.hidden = ok;
    el.staleBanner.textContent = ok
      ? ""
      : (why || "The service cannot be reached") + " (since " + clockTime(Date.now()) +
        "): the tasks are shown as they were last seen, and cancelling is off until it " +
        "answers again.";
    el.confirmOk.disabled = !ok;
    for (const row of rows.values()) fill(row);
    scheduleRender();
  }

  // -- cancel, after a confirmation ------------------------------------------------------

  function askCancel(id) {
    if (!reachable) return;
    const row = rows.get(id);
    const task = row ? row.task : { task_id: id };
    const operation = task.operation == null ? "a function" : String(task.operation);
    const running = task.status === "running";
    confirmFor = id;
    el.confirmText.textContent =
      "Task " + id.slice(0, 8) + " (" + operation + ") is " + String(task.status) + ". " +
      (running
        ? "Cancelling asks the operation to stop; whatever it reported so far is kept."
        : "Cancelling means it never runs.") +
      " This cannot be undone.";
    el.confirmOk.disabled = !reachable;
    if (!el.confirm.open) el.confirm.showModal();
    el.confirmKeep.focus(); // the safe answer is the default one
  }

  function closeConfirm() {
    confirmFor = null;
    if (el.confirm && el.confirm.open) el.confirm.close();
  }

  // -- the chart -------------------------------------------------------------------------

  function bucketOf(ms) {
    return Math.floor(ms / BUCKET_MS);
  }

  // A task ended at ``ms`` (this page's clock): counted once, whichever of its terminal
  // event and its status is seen first.
  function noteEnded(id, kind, ms) {
    if (!TERMINAL.has(kind) || chart.seen.has(id) || !Number.isFinite(ms)) return;
    const bucket = bucketOf(ms);
    chart.seen.set(id, bucket);
    if (bucket <= bucketOf(Date.now()) - BUCKETS) return;
    const counts = chart.ended.get(bucket) || { completed: 0, failed: 0, cancelled: 0 };
    counts[kind] += 1;
    chart.ended.set(bucket, counts);
  }

  function sampleStates() {
    const now = bucketOf(Date.now());
    const counts = { running: 0, pending: 0 };
    for (const row of rows.values()) {
      if (row.task.status in counts) counts[row.task.status] += 1;
    }
    chart.states.set(now, counts);
    const oldest = now - BUCKETS;
    for (const map of [chart.ended, chart.states]) {
      for (const bucket of map.keys()) if (bucket <= oldest) map.delete(bucket);
    }
    for (const [id, bucket] of chart.seen) {
      if (bucket <= oldest && !rows.has(id)) chart.seen.delete(id);
    }
  }

  function svg(tag, attributes) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  function drawChart() {
    const width = 600;
    const height = 120;
    const top = 6;
    const plot = height - top;
    const now = bucketOf(Date.now());
    const first = now - BUCKETS + 1;
    const step = width / BUCKETS;
    let maxEnded = 1;
    let maxTasks = 1;
    const totals = { completed: 0, failed: 0, cancelled: 0 };
    for (let bucket = first; bucket <= now; bucket += 1) {
      const ended = chart.ended.get(bucket);
      if (ended) {
        maxEnded = Math.max(maxEnded, ended.completed + ended.failed + ended.cancelled);
        for (const kind of ENDED_KINDS) totals[kind] += ended[kind];
      }
      const states = chart.states.get(bucket);
      if (states) maxTasks = Math.max(maxTasks, states.running, states.pending);
    }
    const baseline = height - 0.5;
    const nodes = [svg("line", { x1: 0, y1: baseline, x2: width, y2: baseline, class: "axis" })];
    for (let bucket = first; bucket <= now; bucket += 1) {
      const ended = chart.ended.get(bucket);
      if (!ended) continue;
      let y = height;
      const x = (bucket - first) * step;
      for (const kind of ENDED_KINDS) {
        if (!ended[kind]) continue;
        const h = (ended[kind] / maxEnded) * plot;
        y -= h;
        const bar = svg("rect", {
          x: x + 1, y, width: Math.max(1, step - 2), height: h, class: "bar " + kind,
        });
        bar.dataset.kind = kind;
        const title = svg("title", {});
        title.textContent = clockTime(bucket * BUCKET_MS) + ": " + ended[kind] + " " + kind;
        bar.appendChild(title);
        nodes.push(bar);
      }
    }
    for (const state of ["pending", "running"]) {
      const points = [];
      for (let bucket = first; bucket <= now; bucket += 1) {
        const states = chart.states.get(bucket);
        if (!states) continue;
        const x = (bucket - first + 0.5) * step;
        const y = height - (states[state] / maxTasks) * plot;
        points.push(x.toFixed(1) + "," + y.toFixed(1));
      }
      if (points.length === 1) points.push(points[0]); // one sample still draws a dot
      if (points.length) {
        const line = svg("polyline", {
          points: points.join(" "), class: "series " + state, "vector-effect": "non-scaling-stroke",
        });
        line.dataset.series = state;
        nodes.push(line);
      }
    }
    el.chart.replaceChildren(...nodes);
    const latest = chart.states.get(now) || { running: 0, pending: 0 };
    el.chartSummary.textContent =
      "last 5 min: " + totals.completed + " completed, " + totals.failed + " failed, " +
      totals.cancelled + " cancelled (bars, up to " + maxEnded + " per 5 s); now " +
      latest.running + " running, " + latest.pending + " pending (lines, up to " + maxTasks +
      ")";
  }

  // -- the detail view -------------------------------------------------------------------

  function node(tag, text, field) {
    const element = document.createElement(tag);
    if (text !== undefined && text !== null) element.textContent = String(text);
    if (field) element.dataset.field = field;
    return element;
  }

  function json(value) {
    if (value === undefined) return "";
    try {
      const text = JSON.stringify(value, null, 2);
      return text === undefined ? String(value) : text;
    } catch (_) {
      return String(value);
    }
  }

  function section(name, title, ...children) {
    const box = document.createElement("section");
    box.className = "card";
    box.dataset.section = name;
    box.appendChild(node("h3", title));
    box.append(...children);
    return box;
  }

  function facts(pairs) {
    const list = document.createElement("dl");
    for (const [label, value, field] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      list.appendChild(node("dt", label));
      const dd = value instanceof Node ? value : node("dd", value, field);
      if (value instanceof Node && field) dd.dataset.field = field;
      list.appendChild(dd);
    }
    return list;
  }

  function pre(value, field) {
    const block = node("pre", json(value), field);
    block.className = "json";
    return block;
  }

  function taskLinks(ids) {
    const dd = document.createElement("dd");
    ids.forEach((id, index) => {
      if (index) dd.append(", ");
      const link = node("a", String(id).slice(0, 8));
      link.href = taskHash(String(id));
      link.title = String(id);
      dd.appendChild(link);
    });
    return dd;
  }

  // Rebuilt only when what it shows changed, so text selected in it (an error message
  // being copied) is not lost whenever another task moves.
  function renderDetail() {
    if (route === null || el.detail.hidden) return;
    const id = route;
    const row = rows.get(id);
    const shows = [id, row ? row.task : null, detailMissing, reachable, cancelling.has(id)];
    const key = JSON.stringify(shows);
    if (key === detailKey) return;
    detailKey = key;
    el.detailId.textContent = id;
    if (!row) {
      el.detailMissing.hidden = false;
      el.detailMissing.textContent = detailMissing || "Loading\u2026";
      el.detailState.textContent = "";
      el.detailCode.hidden = true;
      el.detailCancel.hidden = true;
      el.detailBody.replaceChildren();
      return;
    }
    el.detailMissing.hidden = true;
    const task = row.task;
    const status = statusOf(task);
    el.detailState.textContent = status;
    el.detailState.dataset.state = status;
    el.detailState.dataset.stale = String(!reachable);
    const code = task.error && task.error.code != null ? String(task.error.code) : "";
    el.detailCode.textContent = code;
    el.detailCode.hidden = !code;
    fillCancel(el.detailCancel, task);
    el.detailBody.replaceChildren(...detailSections(task));
  }

  function detailSections(task) {
    const sections = [];
    const error = task.error;
    if (error && typeof error === "object") {
      const details = error.details && typeof error.details === "object" ? error.details : {};
      const parts = [
        facts([
          ["Code", error.code, "error-code"],
          ["Message", error.message, "error-message"],
          ["Remedy", error.remediation, "error-remedy"],
        ]),
      ];
      if (Object.keys(details).length) {
        parts.push(node("h4", "Details"), pre(details, "error-details"));
      }
      sections.push(section("error", "Error", ...parts));
    }
    if ("result" in task) {
      // A stopped operation's late return value is kept, but did not complete the task.
      const title = task.status === "completed" ? "Result" : "Result (returned after it ended)";
      sections.push(section("result", title, pre(task.result, "result")));
    }
    if ("partial_result" in task) {
      sections.push(
        section("partial", "Partial result", pre(task.partial_result, "partial-result")),
      );
    }
    if (task.checkpointed_at != null) {
      sections.push(section("checkpoint", "Checkpoint", pre(task.checkpoint, "checkpoint")));
    }
    const resources = resourceFacts(task);
    if (resources) sections.push(section("resources", "Resources", resources));

    const percent = Math.round(progressOf(task) * 100) + "%";
    const depends = Array.isArray(task.depends_on) && task.depends_on.length
      ? taskLinks(task.depends_on)
      : null;
    sections.push(
      section(
        "summary",
        "Task",
        facts([
          ["Id", task.task_id, "task-id"],
          ["Operation", task.operation == null ? "(function)" : task.operation, "operation"],
          ["Owner", task.user == null ? "\u2014" : task.user, "owner"],
          ["Priority", task.priority, "priority"],
          ["Where it ran", ISOLATION[task.isolation] || task.isolation, "isolation"],
          ...placementFacts(task.placement),
          ["Progress", percent, "progress"],
          [
            "Timeout",
            task.timeout == null ? "none" : formatDuration(task.timeout * 1000),
            "timeout",
          ],
          [
            "Heartbeat timeout",
            task.heartbeat_timeout == null ? null : formatDuration(task.heartbeat_timeout * 1000),
            "heartbeat-timeout",
          ],
          ["Group", task.group_id, "group"],
          ["Depends on", depends, "depends-on"],
          [
            "Scheduled for",
            task.status === "pending" && task.scheduled_for ? formatTime(task.scheduled_for) : null,
            "scheduled-for",
          ],
        ]),
      ),
    );

    const params = task.params;
    const noParams =
      params === undefined ||
      (params && typeof params === "object" && !Object.keys(params).length);
    sections.push(
      section(
        "params",
        "Params",
        noParams ? node("p", "(none)", "params") : pre(params, "params"),
      ),
    );
    sections.push(section("timing", "Timing", timing(task)));
    sections.push(section("attempts", "Attempts", attempts(task)));
    if (Array.isArray(task.injected_faults) && task.injected_faults.length) {
      const list = document.createElement("ul");
      list.dataset.field = "injected-faults";
      for (const fault of task.injected_faults) {
        list.appendChild(node("li", "attempt " + fault.attempt + ": " + fault.fault));
      }
      sections.push(
        section(
          "faults",
          "Injected faults",
          node("p", "Injected by a test (fault injection), not a real failure.", null),
          list,
        ),
      );
    }
    return sections;
  }

  function timing(task) {
    const created = timeMs(task.created_at);
    const started = timeMs(task.started_at);
    const ended = timeMs(task.ended_at);
    const now = serverNowMs();
    const has = (ms) => !Number.isNaN(ms);
    let waited = null;
    if (has(started)) waited = formatDuration(started - created);
    else if (has(ended)) waited = formatDuration(ended - created); // ended before it ran
    else waited = formatDuration(now - created) + " so far";
    let ran = null;
    if (has(started)) {
      ran = has(ended)
        ? formatDuration(ended - started)
        : formatDuration(now - started) + " so far";
    }
    return facts([
      ["Created", formatTime(task.created_at), "created-at"],
      ["Started", has(started) ? formatTime(task.started_at) : "not started", "started-at"],
      ["Ended", has(ended) ? formatTime(task.ended_at) : null, "ended-at"],
      ["Waited", waited, "waited"],
      ["Ran", ran, "ran"],
      ["Total", has(ended) ? formatDuration(ended - created) : null, "total"],
      ["Last sign of life", formatTime(task.last_heartbeat_at), "last-heartbeat-at"],
      ["Checkpointed", formatTime(task.checkpointed_at), "checkpointed-at"],
    ]);
  }

  // Where the attempt runs, as its back-end said (a Ray node and its worker's pid).
  function placementFacts(placement) {
    if (!placement || typeof placement !== "object") return [];
    return [
      ["Node", placement.node_id == null ? null : String(placement.node_id), "placement-node"],
      ["Worker pid", placement.worker_pid == null ? null : String(placement.worker_pid),
        "placement-pid"],
    ];
  }

  // "gpu: 1, vram_gb: 24" for a map of resource names to amounts (null: none).
  function resourceText(map) {
    if (!map || typeof map !== "object") return null;
    const names = Object.keys(map);
    if (!names.length) return null;
    return names.map((name) => name + ": " + map[name]).join(", ");
  }

  // What a task asks for of the host's (or the cluster's) resources, what it holds
  // and its GPUs, and, while pending, what it waits for; null for a task that asks
  // for none.
  function resourceFacts(task) {
    const asked = resourceText(task.resources);
    const held = resourceText(task.resources_held);
    const waiting = resourceText(task.waiting_for);
    const gpus = Array.isArray(task.gpu_indices) && task.gpu_indices.length
      ? task.gpu_indices.join(", ")
      : null;
    if (asked === null && held === null && waiting === null && gpus === null) return null;
    return facts([
      ["Asks for", asked, "resources"],
      ["Holds", held, "resources-held"],
      ["GPUs", gpus, "gpu-indices"],
      ["Waits for", waiting, "waiting-for"],
    ]);
  }

  // Attempt n: how it ended. Earlier attempts from ``attempt_errors``, the current one
  // from the task's own state and error.
  function attempts(task) {
    const earlier = Array.isArray(task.attempt_errors) ? task.attempt_errors : [];
    const count = Math.max(Number(task.attempt) || 0, earlier.length);
    const faults = new Map();
    for (const fault of Array.isArray(task.injected_faults) ? task.injected_faults : []) {
      faults.set(fault.attempt, fault.fault);
    }
    const list = document.createElement("ol");
    list.dataset.field = "attempts";
    for (let number = 1; number <= count; number += 1) {
      let text;
      const past = earlier[number - 1];
      if (past) {
        text = "failed: " + past.code + ": " + past.message;
      } else if (task.error && TERMINAL.has(task.status)) {
        text = task.status + ": " + task.error.code + ": " + task.error.message;
      } else {
        text = String(task.status);
      }
      if (faults.has(number)) text += " (injected fault: " + faults.get(number) + ")";
      list.appendChild(node("li", text));
    }
    if (task.status === "pending" && task.next_attempt_at) {
      list.appendChild(node("li", "waiting until " + formatTime(task.next_attempt_at)));
    }
    if (!list.children.length) {
      const never = task.status === "pending" ? "Not started yet." : "It never ran.";
      return node("p", never, "attempts");
    }
    return list;
  }

  // -- routing ---------------------------------------------------------------------------

  function routeFromHash() {
    const found = TASK_ROUTE.exec(location.hash);
    if (!found) return null;
    try {
      return decodeURIComponent(found[1]);
    } catch (_) {
      return found[1];
    }
  }

  function applyRoute() {
    const next = routeFromHash();
    const wasList = route === null;
    route = next;
    document.title =
      next === null ? "storycore-tasks" : "task " + next.slice(0, 8) + " \u00b7 storycore-tasks";
    if (!signedIn) return; // the sign-in form shows; the route applies after it
    el.tasks.hidden = next !== null;
    el.detail.hidden = next === null;
    if (next !== null) {
      if (wasList) listScroll = window.scrollY;
      detailMissing = null;
      refetch(next);
      render();
      window.scrollTo(0, 0);
    } else {
      render();
      if (!wasList) window.scrollTo(0, listScroll);
    }
  }

  // -- wiring ----------------------------------------------------------------------------

  function init() {
    for (const id of [
      "who", "connection", "login", "tasks", "error", "empty", "pager", "chart", "detail",
    ]) {
      el[id] = $(id);
    }
    el.signOut = $("sign-out");
    el.loginForm = $("login-form");
    el.tokenInput = $("token-input");
    el.tokenSubmit = $("token-submit");
    el.loginError = $("login-error");
    el.staleBanner = $("stale-banner");
    el.filters = [...document.querySelectorAll("#state-filters [data-filter]")];
    el.search = $("search");
    el.sort = $("sort");
    el.count = $("task-count");
    el.rows = $("task-rows");
    el.prev = $("page-prev");
    el.next = $("page-next");
    el.pageInfo = $("page-info");
    el.chartSummary = $("chart-summary");
    el.detailId = $("detail-id");
    el.detailState = $("detail-state");
    el.detailCode = $("detail-code");
    el.detailCancel = $("detail-cancel");
    el.detailMissing = $("detail-missing");
    el.detailBody = $("detail-body");
    el.confirm = $("confirm");
    el.confirmText = $("confirm-text");
    el.confirmOk = $("confirm-ok");
    el.confirmKeep = $("confirm-keep");

    el.loginForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = el.tokenInput.value.trim();
      if (value) signIn(value);
    });
    el.signOut.addEventListener("click", () => signOut(""));
    for (const button of el.filters) {
      button.addEventListener("click", () => {
        view.filter = button.dataset.filter;
        view.page = 0;
        render();
      });
    }
    el.search.addEventListener("input", () => {
      view.search = el.search.value;
      view.page = 0;
      render();
    });
    el.sort.addEventListener("change", () => {
      view.sort = el.sort.value;
      view.page = 0;
      render();
    });
    el.prev.addEventListener("click", () => {
      view.page -= 1;
      render();
    });
    el.next.addEventListener("click", () => {
      view.page += 1;
      render();
    });
    el.detailCancel.addEventListener("click", () => {
      if (route !== null) askCancel(route);
    });
    el.confirmKeep.addEventListener("click", closeConfirm);
    el.confirmOk.addEventListener("click", () => {
      const id = confirmFor;
      closeConfirm();
      if (id !== null) cancelTask(id);
    });
    el.confirm.addEventListener("close", () => {
      confirmFor = null;
    });
    window.addEventListener("hashchange", applyRoute);
    setInterval(() => {
      for (const tr of el.rows.children) {
        const row = rows.get(tr.dataset.taskId);
        if (row) fillAge(row);
      }
      sampleStates();
      drawChart();
      const shown = route !== null && !el.detail.hidden ? rows.get(route) : null;
      if (shown && ACTIVE.has(shown.task.status)) {
        // The durations so far: only the timing box changes.
        const box = el.detailBody.querySelector('[data-section="timing"]');
        if (box) box.replaceWith(section("timing", "Timing", timing(shown.task)));
      }
    }, 1000);
    route = routeFromHash();
    sampleStates();
    drawChart();
    document.body.dataset.ready = "true";
    start();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
