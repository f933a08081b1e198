// The public /try page: reserves a number and PIN for the chosen region. A file, not inline:
// the pages' Content-Security-Policy runs no inline script.
"use strict";

(function () {
  const button = document.getElementById("get-number");
  const result = document.getElementById("result");
  // The session's CSRF token (pages_security.py), needed whenever the request carries our
  // session cookie.
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.className = "shown"; result.textContent = "Reserving…";
    try {
      const answer = await fetch("/try/number", {method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken},
        body: JSON.stringify({region: document.getElementById("region").value})});
      const data = await answer.json();
      result.textContent = "";
      if (!answer.ok) { result.className = "shown error"; result.textContent = data.message; return; }
      const number = document.createElement("p"); number.className = "big";
      number.textContent = `${data.display || data.number}  PIN ${data.pin}#`;
      const until = document.createElement("p");
      until.textContent = `Valid until ${new Date(data.expires_at).toLocaleString()}.`;
      result.append(number, until);
    } catch (error) {
      result.className = "shown error"; result.textContent = "Something went wrong; please try again.";
    } finally { button.disabled = false; }
  });
})();
