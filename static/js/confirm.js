// Asks before a destructive form is sent: a form with data-confirm="question" is sent only if the user agrees.
// (A script file rather than an inline onclick, which the Content Security Policy forbids.)
(function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
