// Recovery codes: copy, download as a text file, print. The codes never leave the page (no request is made).
(function () {
  "use strict";
  function codes() {
    return Array.from(document.querySelectorAll("ul.codes code")).map(function (c) { return c.textContent.trim(); });
  }
  function text() {
    var list = document.querySelector("ul.codes");
    var header = (list && list.dataset.header) || "Recovery codes";
    return header + "\n" + codes().join("\n") + "\n";
  }
  function say(msg) {
    var out = document.getElementById("codes-status");
    if (out) { out.textContent = msg; }
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-codes-action]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var action = button.dataset.codesAction;
        if (action === "copy") {
          if (!navigator.clipboard) { say("Copying is not available here: select the codes and copy them."); return; }
          navigator.clipboard.writeText(text()).then(function () { say("Copied " + codes().length + " codes."); },
            function () { say("Copying was blocked: select the codes and copy them."); });
        } else if (action === "download") {
          var a = document.createElement("a");
          a.href = URL.createObjectURL(new Blob([text()], {type: "text/plain"}));
          a.download = button.dataset.filename || "recovery-codes.txt";
          document.body.appendChild(a);
          a.click();
          setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
          say("Downloaded " + a.download + ".");
        } else if (action === "print") {
          window.print();
        }
      });
    });
  });
})();
