// Shows the chosen file's size and a preview before upload; the server validates the content. The
// browser's own file input says "No file chosen" (or the name): the line below it only adds the size.
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
      label.textContent = "";
      return;
    }
    label.textContent = file.name + " (" + Math.round(file.size / 1024) + " KB)";
    objectUrl = URL.createObjectURL(file);
    preview.onerror = function () { preview.src = preview.dataset.placeholder; };
    preview.src = objectUrl;
  });
})();
