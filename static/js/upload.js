// Shows the chosen file's name and a preview before upload; the server validates the content.
(function () {
  var input = document.getElementById("id_image");
  var preview = document.getElementById("preview");
  var label = document.getElementById("file-name");
  if (!input || !preview) return;
  var objectUrl = null;
  input.addEventListener("change", function () {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    var file = input.files && input.files[0];
    if (!file) {
      preview.src = preview.dataset.placeholder;
      label.textContent = "No file chosen";
      return;
    }
    label.textContent = file.name + " (" + Math.round(file.size / 1024) + " KB)";
    objectUrl = URL.createObjectURL(file);
    preview.onerror = function () { preview.src = preview.dataset.placeholder; };
    preview.src = objectUrl;
  });
})();
