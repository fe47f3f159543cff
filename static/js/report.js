// The report's Print button: shown only where scripts run, it opens the browser's print dialog.
(function () {
  var button = document.getElementById("print-report");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();
