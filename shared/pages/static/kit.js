/* sanzhang's page kit: small improvements over plain forms. Every page works without this file
   (the forms post to the server, which answers with a page); with it, photos are shrunk in the
   browser before upload, "use my location" fills the location fields, and a form is not sent twice. */
(function () {
  "use strict";
  var MAX_SIDE = 1600, QUALITY = 0.8;

  function shrink(file) {
    return new Promise(function (resolve) {
      if (!/^image\//.test(file.type) || !window.URL || !HTMLCanvasElement.prototype.toBlob) { resolve(file); return; }
      var img = new Image(), url = URL.createObjectURL(file);
      img.onload = function () {
        var scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(img.naturalWidth * scale);
        canvas.height = Math.round(img.naturalHeight * scale);
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        URL.revokeObjectURL(url);
        canvas.toBlob(function (blob) {
          if (!blob || blob.size >= file.size) { resolve(file); return; }
          resolve(new File([blob], file.name.replace(/\.\w+$/, "") + ".jpg", { type: "image/jpeg" }));
        }, "image/jpeg", QUALITY);
      };
      img.onerror = function () { URL.revokeObjectURL(url); resolve(file); };
      img.src = url;
    });
  }

  function shrinkInputs(form) {
    var inputs = form.querySelectorAll("input[type=file][data-shrink]");
    var jobs = Array.prototype.map.call(inputs, function (input) {
      var files = Array.prototype.slice.call(input.files || []);
      if (!files.length || typeof DataTransfer === "undefined") return Promise.resolve();
      return Promise.all(files.map(shrink)).then(function (small) {
        var dt = new DataTransfer();
        small.forEach(function (f) { dt.items.add(f); });
        input.files = dt.files;
        input.dataset.shrunk = small.map(function (f) { return f.size; }).join(",");
      });
    });
    return Promise.all(jobs);
  }

  function busy(form, text) {
    var button = form.querySelector("button[type=submit],button:not([type])");
    if (button) { button.disabled = true; button.dataset.label = button.textContent; button.textContent = text; }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sending) { event.preventDefault(); return; }
    form.dataset.sending = "1";
    if (!form.querySelector("input[type=file][data-shrink]")) { busy(form, "正在提交…"); return; }
    event.preventDefault();
    busy(form, "正在压缩照片…");
    shrinkInputs(form).then(function () { form.submit(); }, function () { form.submit(); });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-locate]");
    if (!button || !navigator.geolocation) return;
    event.preventDefault();
    var out = document.getElementById(button.getAttribute("aria-controls"));
    out.textContent = "正在获取位置…";
    navigator.geolocation.getCurrentPosition(function (pos) {
      document.getElementById("lat").value = pos.coords.latitude.toFixed(6);
      document.getElementById("lng").value = pos.coords.longitude.toFixed(6);
      out.textContent = "已获取位置（约" + Math.round(pos.coords.accuracy) + "米范围内）";
    }, function () { out.textContent = "未能获取位置，可不填，写清地址即可"; }, { timeout: 10000, maximumAge: 60000 });
  });

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-locate]"), function (b) {
      if (navigator.geolocation) b.hidden = false;
    });
  });
})();
