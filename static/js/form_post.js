// OAuth 2.0 Form Post Response Mode: submit the authorization response to the client's registered redirect URI.
// Same-origin script (the CSP allows only 'self'); the page's form-action names that URI's origin.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("form-post-response");
  if (form) { form.submit(); }
});
