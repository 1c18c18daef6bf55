// Security center → Language and time zone: offer this browser's IANA time zone (Intl) next to the field.
// Same-origin script (the CSP allows only 'self'). The server still validates whatever is submitted.
document.addEventListener("DOMContentLoaded", function () {
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
  if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(zone) || zone.length > 64) { return; }
  document.querySelectorAll("button[data-browser-zone]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-browser-zone"));
    if (!field || field.value === zone) { return; }
    button.querySelector("span").textContent = zone;
    button.hidden = false;
    button.addEventListener("click", function () {
      field.value = zone;
      button.hidden = true;
      field.focus();
    });
  });
});
