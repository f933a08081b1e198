// The overview's live calls, reloaded every few seconds from /dashboard/live (server-rendered
// rows). Optional: without this script the page is complete, only static.
"use strict";

(function () {
  const live = document.querySelector("[data-refresh-url]");
  if (!live) return;
  const url = live.dataset.refreshUrl;
  const everyMs = Number(live.dataset.refreshMs) || 5000;

  async function refresh() {
    try {
      const response = await fetch(url, { cache: "no-store", credentials: "same-origin",
                                          redirect: "manual" });
      // Signed out (the session expired, or the token changed): the page itself goes to the
      // sign-in form.
      if (response.type === "opaqueredirect" || response.status === 401) {
        window.location.reload();
        return;
      }
      if (response.ok) {
        live.innerHTML = await response.text();
        live.dataset.refreshedAt = new Date().toISOString();
      }
    } catch (_) {
      // The service did not answer; keep the last table and try again on the next tick.
    }
    setTimeout(refresh, everyMs);
  }

  setTimeout(refresh, everyMs);
})();
