// WebAuthn ceremonies for authsvc pages. No inline script anywhere (CSP script-src 'self'): buttons carry their
// endpoints in data-* attributes; the CSRF token comes from <meta name="csrf-token"> (or, on the login page, from
// its form's csrf_token field). The server does all checks.
// Any page that includes this file and has a <button data-webauthn=...> gets the ceremony (the passkey page, the
// login form, the second-factor and step-up pages, the passkey list). A button with data-unsupported="ID" is
// disabled at load, and element ID shown, when the browser cannot run the ceremony.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      return meta.getAttribute("content");
    }
    var field = document.querySelector('input[name="csrf_token"]');  // a page whose form carries the token already
    return field ? field.value : "";
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
    return !!window.PublicKeyCredential && typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
      typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
  }

  // The server only answers same-site paths; this keeps it so in the browser too (location.assign's URL parser
  // drops tabs and newlines, so "/\t/x" would become "//x": resolve it first and refuse any other origin).
  function go(target) {
    var url;
    try { url = new URL(target || "/", window.location.href); } catch (ignored) { url = null; }
    window.location.assign(url && url.origin === window.location.origin ? url.href : "/");
  }

  async function register(button) {
    var nameInput = document.getElementById(button.dataset.name || "");
    var options = await postJson(button.dataset.optionsUrl, {});
    var credential = await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)});
    var result = await postJson(button.dataset.verifyUrl, {
      credential: credential.toJSON(), name: nameInput ? nameInput.value : ""
    });
    go(result.redirect);
  }

  var conditional = null;  // the AbortController of a pending autofill request (login page)

  async function authenticate(button, mediation) {
    var flow = button.dataset.flow || "passkey";
    var options = await postJson(button.dataset.optionsUrl, {flow: flow});
    var request = {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)};
    if (mediation) {
      request.mediation = mediation;
      request.signal = conditional.signal;
    }
    var credential = await navigator.credentials.get(request);
    var remember = document.getElementById(button.dataset.remember || "");
    var result = await postJson(button.dataset.verifyUrl, {
      flow: flow, credential: credential.toJSON(), remember: !!(remember && remember.checked),
      next: button.dataset.next || null
    });
    go(result.redirect);
  }

  async function run(button) {
    if (!supported()) {
      showError(button, "This browser cannot use passkeys or security keys here. Use another method.");
      return;
    }
    button.disabled = true;
    if (conditional) {  // one WebAuthn request at a time: a click wins over the pending autofill request
      conditional.abort();
      conditional = null;
    }
    try {
      if (button.dataset.webauthn === "register") {
        await register(button);
      } else {
        await authenticate(button);
      }
    } catch (error) {
      if (error.data && error.data.redirect) {
        go(error.data.redirect);
        return;
      }
      var cancelled = error.name === "NotAllowedError" || error.name === "AbortError";
      showError(button, cancelled ? "The request was cancelled or timed out. Try again." : error.message);
    } finally {
      button.disabled = false;
    }
  }

  // No WebAuthn (window.PublicKeyCredential undefined, or too old for the JSON helpers): say so next to the button
  // instead of offering a control that can only fail.
  function markUnsupported() {
    if (supported()) {
      return;
    }
    document.querySelectorAll("[data-webauthn][data-unsupported]").forEach(function (button) {
      var note = document.getElementById(button.dataset.unsupported);
      button.disabled = true;
      if (note) {
        note.hidden = false;
        var described = (button.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
        if (described.indexOf(note.id) < 0) {
          described.push(note.id);
        }
        button.setAttribute("aria-describedby", described.join(" "));
      }
    });
  }

  // Passkey autofill on the login page: a conditional request runs in the background and completes when the user
  // picks a passkey from the e-mail field's suggestions (autocomplete="username webauthn").
  async function startConditional() {
    var holder = document.querySelector("[data-webauthn-conditional]");
    if (!holder || !supported() || typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") {
      return;
    }
    if (!(await PublicKeyCredential.isConditionalMediationAvailable())) {
      return;
    }
    conditional = new AbortController();
    try {
      await authenticate(holder, "conditional");
    } catch (error) {
      if (error.name === "AbortError" || error.name === "NotAllowedError") {
        return;  // the user clicked a button instead, or dismissed the suggestion
      }
      if (error.data && error.data.redirect) {
        go(error.data.redirect);
        return;
      }
      showError(holder, error.message);
    }
  }

  // The passkey offer after a password sign-in is shown only where this browser can make a passkey.
  function showOffer() {
    if (!supported()) {
      return;
    }
    document.querySelectorAll("[data-passkey-offer]").forEach(function (el) { el.hidden = false; });
  }

  // WebAuthn Signal API: tell the passkey provider which of this account's passkeys still work, so a passkey
  // removed here disappears from the user's device too (where the browser implements it; otherwise nothing).
  function signalAccepted() {
    var el = document.querySelector("[data-webauthn-signal]");
    if (!el || !window.PublicKeyCredential ||
        typeof PublicKeyCredential.signalAllAcceptedCredentials !== "function") {
      return;
    }
    var ids = (el.dataset.credentialIds || "").split(" ").filter(Boolean);
    PublicKeyCredential.signalAllAcceptedCredentials({
      rpId: el.dataset.rpId, userId: el.dataset.userId, allAcceptedCredentialIds: ids
    }).catch(function () { /* advisory only */ });
  }

  function onReady() {
    markUnsupported();
    showOffer();
    signalAccepted();
    startConditional();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", onReady);
  } else {
    onReady();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-webauthn]");
    if (button) {
      event.preventDefault();
      run(button);
    }
  });
}());
