// The book's own script (loaded on every page through html_js_files in _config.yml; no library).
// A click on a figure in a chapter's output opens it at full size in an overlay over the page;
// a click anywhere or Escape closes it. Images already shown at full size are left alone.
(function () {
  "use strict";

  function close(overlay) {
    if (overlay && overlay.parentNode) overlay.parentNode.removeChild(overlay);
    document.removeEventListener("keydown", onKey);
  }

  function onKey(event) {
    if (event.key === "Escape") close(document.querySelector(".reprobook-overlay"));
  }

  function open(img) {
    var overlay = document.createElement("div");
    overlay.className = "reprobook-overlay";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", "Figure at full size");
    var big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt || "";
    big.width = img.naturalWidth;
    var hint = document.createElement("span");
    hint.className = "reprobook-overlay-hint";
    hint.textContent = "click or Esc to close";
    overlay.appendChild(big);
    overlay.appendChild(hint);
    overlay.addEventListener("click", function () { close(overlay); });
    document.addEventListener("keydown", onKey);
    document.body.appendChild(overlay);
  }

  function shrunk(img) {
    return img.naturalWidth > img.clientWidth + 1;
  }

  function setup() {
    var images = document.querySelectorAll(".bd-article div.cell_output img, .bd-article figure img");
    images.forEach(function (img) {
      var mark = function () {
        if (shrunk(img)) img.classList.add("reprobook-zoomable");
      };
      if (img.complete) mark(); else img.addEventListener("load", mark);
      img.addEventListener("click", function (event) {
        if (!shrunk(img) || img.closest("a")) return;
        event.preventDefault();
        open(img);
      });
    });
    window.addEventListener("resize", function () {
      images.forEach(function (img) {
        img.classList.toggle("reprobook-zoomable", shrunk(img));
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
