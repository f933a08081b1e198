// Live parts of the dashboard's pages: every element with data-refresh-url (the overview's live
// calls, a campaign's progress) is reloaded from that URL (server-rendered HTML) every
// data-refresh-ms; the live calls every second while a test call placed from the sandbox panel
// lasts. Optional: without this script the pages are complete, only static.
"use strict";

(function () {
  function follow(live) {
    const url = live.dataset.refreshUrl;
    const everyMs = Number(live.dataset.refreshMs) || 5000;
    let fastUntil = 0;
    let timer = null;

    // sandbox.js announces a test call: follow it closely from its join to its leave.
    document.addEventListener("sandbox:call-placed", (event) => {
      fastUntil = Date.now() + ((event.detail.durationS || 4) + 6) * 1000;
      clearTimeout(timer);
      timer = setTimeout(refresh, 500);
    });

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
        // The service did not answer; keep the last content and try again on the next tick.
      }
      timer = setTimeout(refresh, Date.now() < fastUntil ? 1000 : everyMs);
    }

    timer = setTimeout(refresh, everyMs);
  }

  document.querySelectorAll("[data-refresh-url]").forEach(follow);
})();
