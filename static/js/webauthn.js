// WebAuthn ceremonies for authsvc pages. No inline script anywhere (CSP script-src 'self'): buttons carry their
// endpoints in data-* attributes; the CSRF token comes from <meta name="csrf-token">. The server does all checks.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function showError(button, message) {
    var box = document.getElementById(button.dataset.error || "");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  async function postJson(url, body) {
    var response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body)
    });
    var data = null;
    try { data = await response.json(); } catch (ignored) { data = null; }
    if (!response.ok) {
      var error = new Error((data && data.message) || "The request failed. Reload the page and try again.");
      error.data = data || {};
      throw error;
    }
    return data;
  }

  function supported() {
    return window.PublicKeyCredential && typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
      typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
  }

  async function register(button) {
    var nameInput = document.getElementById(button.dataset.name || "");
    var options = await postJson(button.dataset.optionsUrl, {});
    var credential = await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)});
    var result = await postJson(button.dataset.verifyUrl, {
      credential: credential.toJSON(), name: nameInput ? nameInput.value : ""
    });
    window.location.assign(result.redirect);
  }

  async function authenticate(button) {
    var flow = button.dataset.flow;
    var options = await postJson(button.dataset.optionsUrl, {flow: flow});
    var credential = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
    var remember = document.getElementById(button.dataset.remember || "");
    var result = await postJson(button.dataset.verifyUrl, {
      flow: flow, credential: credential.toJSON(), remember: !!(remember && remember.checked),
      next: button.dataset.next || null
    });
    window.location.assign(result.redirect);
  }

  async function run(button) {
    if (!supported()) {
      showError(button, "This browser cannot use passkeys or security keys here. Use another method.");
      return;
    }
    button.disabled = true;
    try {
      if (button.dataset.webauthn === "register") {
        await register(button);
      } else {
        await authenticate(button);
      }
    } catch (error) {
      if (error.data && error.data.redirect) {
        window.location.assign(error.data.redirect);
        return;
      }
      var cancelled = error.name === "NotAllowedError" || error.name === "AbortError";
      showError(button, cancelled ? "The request was cancelled or timed out. Try again." : error.message);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-webauthn]");
    if (button) {
      event.preventDefault();
      run(button);
    }
  });
}());
