// The workbench's own script (a file, so that the Content-Security-Policy allows no inline
// script): keyboard shortcuts for the review queue, and problem documents shown to the user.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var t = event.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    var button = document.querySelector('[data-shortcut="' + event.key.toLowerCase() + '"]');
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("problem");
    if (!box) return;
    var text = "The request failed (" + event.detail.xhr.status + ").";
    try {
      var body = JSON.parse(event.detail.xhr.responseText);
      if (body && body.detail) text = body.detail;
    } catch (e) { /* not a problem document */ }
    box.textContent = text;
    box.hidden = false;
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var box = document.getElementById("problem");
    if (box) box.hidden = true;
    // One decision at a time: the buttons wait for the answer.
    document.querySelectorAll("[data-shortcut]").forEach(function (b) { b.disabled = true; });
  });
  document.addEventListener("htmx:afterRequest", function () {
    document.querySelectorAll("[data-shortcut]").forEach(function (b) { b.disabled = false; });
  });
})();
