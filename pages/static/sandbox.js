// The sandbox panel (pages/templates/pages/_sandbox_panel.html): places test calls, on the
// dashboard and at /. At / it also polls /home/calls every second, renders the live and recent
// tables, and shows a call's timeline and transcript when its row is clicked. No framework.
"use strict";

(function () {
  const placeButton = document.getElementById("place-call");
  if (!placeButton) return;
  const statusLine = document.getElementById("status");
  const scriptSelect = document.getElementById("call-script");  // "" for a plain short call
  const followed = document.getElementById("followed-calls");  // only at /
  const pollMs = followed ? Number(followed.dataset.pollMs) || 1000 : 0;
  const detail = document.getElementById("call-detail");
  let selectedId = null;
  const SCRIPTED_CALL_S = 20;  // about how long the dashboard follows a scripted call closely
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

  const COLUMNS = [
    ["id", (c) => c.id, "mono"],
    ["channel", (c) => c.channel, "mono"],
    ["state", (c) => c.state, ""],
    ["agent_id", (c) => c.agent_id || "—", "mono"],
    ["time_to_agent_ms", (c) => (c.time_to_agent_ms == null ? "—" : String(c.time_to_agent_ms)), "num"],
    ["duration", duration, "num"],
    ["end_reason", (c) => c.end_reason || "—", ""],
    ["started_at", (c) => clockTime(c.started_at), "time"],
  ];

  function duration(call) {
    if (call.duration_s != null) return call.duration_s.toFixed(1) + " s";
    const started = Date.parse(call.started_at);
    if (Number.isNaN(started)) return "—";
    return Math.max(0, (Date.now() - started) / 1000).toFixed(1) + " s…";
  }

  function clockTime(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    return Number.isNaN(at.getTime()) ? iso : at.toLocaleTimeString([], { hour12: false });
  }

  function cell(tag, text, className) {
    const el = document.createElement(tag);
    el.textContent = text;
    if (className) el.className = className;
    return el;
  }

  function row(call) {
    const tr = document.createElement("tr");
    tr.dataset.callId = call.id;
    tr.dataset.state = call.state;
    tr.tabIndex = 0;
    if (call.id === selectedId) tr.classList.add("selected");
    for (const [name, value, className] of COLUMNS) {
      // The state as the dashboard shows it: a coloured pill.
      const td = name === "state" ? document.createElement("td") : cell("td", value(call), className);
      if (name === "state") td.appendChild(cell("span", value(call), `state state-${call.state}`));
      td.dataset.col = name;
      if (name === "id" || name === "agent_id" || name === "started_at") {
        td.title = name === "started_at" ? call.started_at : td.textContent;
      }
      tr.appendChild(td);
    }
    return tr;
  }

  // Rows are rebuilt only when a call changed, so a click is never lost to a redraw; a live
  // call's running duration is updated in place.
  const shown = {};
  function render(tableId, countId, calls, emptyText) {
    const tbody = document.querySelector(`#${tableId} tbody`);
    const signature = JSON.stringify(calls);
    if (shown[tableId] === signature) {
      for (const call of calls) {
        const td = tbody.querySelector(`tr[data-call-id="${CSS.escape(call.id)}"] td[data-col="duration"]`);
        if (td) td.textContent = duration(call);
      }
      return;
    }
    shown[tableId] = signature;
    const rows = calls.length ? calls.map(row) : [emptyRow(emptyText)];
    tbody.replaceChildren(...rows);
    document.getElementById(countId).textContent = calls.length ? `(${calls.length})` : "";
  }

  function emptyRow(text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell("td", text);
    td.colSpan = COLUMNS.length;
    tr.appendChild(td);
    return tr;
  }

  async function getJson(url, options) {
    const response = await fetch(url, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = (body && body.message) || `HTTP ${response.status}`;
      throw new Error(message);
    }
    return body;
  }

  let pollFailed = false;
  async function poll() {
    try {
      const data = await getJson("/home/calls", { cache: "no-store" });
      render("live-calls", "live-count", data.live, "No live calls. Place a test call to start one.");
      render("recent-calls", "recent-count", data.recent, "No finished calls yet.");
      if (pollFailed) setStatus("", "");
      pollFailed = false;
      if (selectedId) await showDetail(selectedId, false);
    } catch (err) {
      pollFailed = true;
      setStatus(`The service is not answering (${err.message}); retrying…`, "error");
    } finally {
      setTimeout(poll, pollMs);
    }
  }

  function setStatus(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "status" + (kind ? " " + kind : "");
  }

  placeButton.addEventListener("click", async () => {
    placeButton.disabled = true;
    const script = scriptSelect ? scriptSelect.value : "";
    setStatus("Placing a test call…", "");
    try {
      const data = await getJson(placeButton.dataset.url, {
        method: "POST",
        // The session's CSRF token (pages_security.py): this request carries the cookie.
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
        body: JSON.stringify(script ? { script } : {}),
      });
      if (data.script) {
        setStatus(`Test call placed in channel ${data.channel}; the caller plays the ${data.script} script, then hangs up.`, "ok");
      } else {
        setStatus(`Test call placed in channel ${data.channel}; the caller hangs up after ${data.duration_s} s.`, "ok");
      }
      // A scripted call has no fixed length: follow it closely for a while.
      const durationS = data.duration_s == null ? SCRIPTED_CALL_S : data.duration_s;
      document.dispatchEvent(new CustomEvent("sandbox:call-placed", { detail: { durationS } }));
    } catch (err) {
      setStatus(err.message, "error");
    } finally {
      placeButton.disabled = false;
    }
  });

  function onRowActivate(event) {
    if (event.type === "keydown" && event.key !== "Enter") return;
    const tr = event.target.closest("tr[data-call-id]");
    if (!tr) return;
    selectedId = tr.dataset.callId;
    document.querySelectorAll("tr.selected").forEach((el) => el.classList.remove("selected"));
    tr.classList.add("selected");
    showDetail(selectedId, true);
  }
  if (!followed) return;  // the dashboard's own tables follow the calls there
  for (const id of ["live-calls", "recent-calls"]) {
    const table = document.getElementById(id);
    table.addEventListener("click", onRowActivate);
    table.addEventListener("keydown", onRowActivate);
  }

  document.getElementById("detail-close").addEventListener("click", () => {
    selectedId = null;
    detail.hidden = true;
    document.querySelectorAll("tr.selected").forEach((el) => el.classList.remove("selected"));
  });

  // An event's detail on one line; a conversation history is shown as the transcript instead.
  function eventInfo(info) {
    if (!info) return "";
    const shown = { ...info };
    if (Array.isArray(shown.contents)) shown.contents = `${shown.contents.length} turns`;
    return Object.entries(shown).map(([key, value]) =>
      `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`).join(" ");
  }

  async function showDetail(callId, scroll) {
    let call;
    try {
      call = await getJson(`/home/calls/${encodeURIComponent(callId)}`, { cache: "no-store" });
    } catch (err) {
      setStatus(`Cannot load call ${callId}: ${err.message}`, "error");
      return;
    }
    if (callId !== selectedId) return;
    document.getElementById("detail-id").textContent = call.id;
    const ttA = call.time_to_agent_ms == null ? "—" : `${call.time_to_agent_ms} ms`;
    document.getElementById("detail-summary").textContent =
      `${call.state} · channel ${call.channel} · agent ${call.agent_id || "—"} · ` +
      `time to agent ${ttA} · duration ${duration(call)}` +
      (call.end_reason ? ` · ended: ${call.end_reason}` : "") +
      (call.last_error ? ` · last error: ${call.last_error}` : "");
    const started = Date.parse(call.started_at);
    const timeline = call.timeline.map((event) => {
      const li = document.createElement("li");
      const offset = ((Date.parse(event.at) - started) / 1000).toFixed(3);
      li.appendChild(cell("span", `+${offset} s`, "at"));
      li.appendChild(cell("span", event.source, "source"));
      li.appendChild(cell("span", event.kind, "kind"));
      li.appendChild(cell("span", eventInfo(event.detail), "info"));
      return li;
    });
    document.getElementById("detail-timeline").replaceChildren(...timeline);
    const turns = call.transcript.length
      ? call.transcript.map((turn) => {
          const li = document.createElement("li");
          li.appendChild(cell("span", turn.role, "role"));
          li.appendChild(cell("span", turn.content, "content"));
          return li;
        })
      : [cell("li", "No transcript (ConvoAI sends the history when the agent leaves).", "empty")];
    document.getElementById("detail-transcript").replaceChildren(...turns);
    detail.hidden = false;
    if (scroll) detail.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  poll();
})();
