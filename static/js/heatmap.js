// Draws the stored class activation map of the chosen finding over the X-ray.
(function () {
  var data = JSON.parse(document.getElementById("heatmap-data").textContent);
  var image = document.getElementById("xray-image");
  var canvas = document.getElementById("heatmap");
  var toggle = document.getElementById("heatmap-toggle");
  var select = document.getElementById("heatmap-finding");

  // A perceptual blue -> yellow -> red scale, the same one the legend shows.
  function colour(t) {
    var stops = [[49, 54, 149], [69, 117, 180], [254, 224, 144], [244, 109, 67], [165, 0, 38]];
    var x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
    var i = Math.min(stops.length - 2, Math.floor(x));
    var f = x - i;
    return stops[i].map(function (c, k) { return Math.round(c + f * (stops[i + 1][k] - c)); });
  }

  function draw() {
    var cam = data[select.value];
    canvas.hidden = !toggle.checked || !cam;
    if (canvas.hidden) return;
    var h = cam.length, w = cam[0].length;
    var flat = [].concat.apply([], cam);
    var lo = Math.min.apply(null, flat), hi = Math.max.apply(null, flat);
    var small = document.createElement("canvas");
    small.width = w; small.height = h;
    var pixels = small.getContext("2d").createImageData(w, h);
    flat.forEach(function (v, i) {
      var rgb = colour(hi > lo ? (v - lo) / (hi - lo) : 0);
      pixels.data.set([rgb[0], rgb[1], rgb[2], 255], i * 4);
    });
    small.getContext("2d").putImageData(pixels, 0, 0);
    canvas.width = image.clientWidth; canvas.height = image.clientHeight;
    var ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  }

  // Off until asked for: a map is a hint, and tinting the film by default hides it.
  var flaggedRow = document.querySelector("#findings tr.flagged");
  if (flaggedRow) select.value = flaggedRow.dataset.finding;
  toggle.addEventListener("change", draw);
  select.addEventListener("change", function () { toggle.checked = true; draw(); });
  function show(row) { select.value = row.dataset.finding; toggle.checked = true; draw(); }
  document.querySelectorAll("#findings tbody tr").forEach(function (row) {
    row.addEventListener("click", function () { show(row); });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); show(row); }
    });
  });
  window.addEventListener("resize", draw);
  if (image.complete) draw(); else image.addEventListener("load", draw);
})();
