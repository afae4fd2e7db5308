/* sanzhang's page kit: small improvements over plain forms. Every page works without this file
   (the forms post to the server, which answers with a page); with it, photos are shrunk in the
   browser before upload, "use my location" fills the location fields, a form is not sent twice, and
   办结's photos are uploaded before 办结 is sent. */
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

  function restore(form) {
    var button = form.querySelector("button[type=submit],button:not([type])");
    if (button && button.dataset.label) { button.disabled = false; button.textContent = button.dataset.label; }
    delete form.dataset.sending;
  }

  /* 办结 with photos: first the form itself is checked at the address in data-check (every check
     of 办结, nothing stored); a refusal sends the form as it is, without its photos, and the server
     answers with the page saying what is wrong next to the field — no photo was kept. Only then do
     the photos go to the address in data-upload (intake keeps them), with the page's CSRF token, and
     only when every one is kept is the form itself sent, with one hidden "photos" field per address
     intake's answer gives (its "uploads"), so the 办结 names the photos sent with it. A refused photo is said next to its field
     and nothing is sent. Without scripts this field stays hidden and the page's separate upload form
     (data-no-js) does the same. */
  function checkFirst(form, input) {
    if (!input.dataset.check) return Promise.resolve(true);
    return fetch(input.dataset.check, { method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": input.dataset.csrf } }).then(function (resp) {
      if (resp.ok) return true;
      if (resp.status >= 500) throw new Error("");
      form.submit();   // refused: the server's page says why, next to the field
      return false;
    });
  }

  function uploadFirst(form, input) {
    function upload(small) {
      var body = new FormData();
      body.append("csrf_token", input.dataset.csrf);
      small.forEach(function (f) { body.append("photos", f, f.name); });
      return fetch(input.dataset.upload, { method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": input.dataset.csrf } });
    }
    busy(form, "正在上传照片…");
    var files = Array.prototype.slice.call(input.files);
    return checkFirst(form, input).then(function (go) {
      if (!go) return null;
      return Promise.all(files.map(shrink)).then(upload);
    }).then(function (resp) {
      if (resp === null) return;
      if (resp.ok) {   // the form names the photos it is sent with, when intake's answer gives their addresses
        return resp.json().catch(function () { return {}; }).then(function (body) {
          (Array.isArray(body.uploads) ? body.uploads : []).forEach(function (u) {
            if (!u || typeof u.url !== "string") return;
            var field = document.createElement("input");
            field.type = "hidden"; field.name = "photos"; field.value = u.url;
            form.appendChild(field);
          });
          form.submit();
        });
      }
      return resp.json().catch(function () { return {}; }).then(function (body) {
        throw new Error(body.message || "照片没有上传成功，请重试");
      });
    }).catch(function (err) {
      var out = document.getElementById(input.id + "-error");
      if (!out) {   // the message right above the field, read out with it (as the server's are)
        out = document.createElement("p");
        out.className = "error"; out.id = input.id + "-error"; out.setAttribute("role", "alert");
        input.parentNode.insertBefore(out, input);
      }
      out.textContent = err && err.message && /[\u4e00-\u9fff]/.test(err.message) ? err.message : "照片没有上传成功，请检查网络后重试";
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", out.id);
      input.closest(".field").classList.add("invalid");
      restore(form);
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sending) { event.preventDefault(); return; }
    form.dataset.sending = "1";
    var upload = form.querySelector("input[type=file][data-upload]");
    if (upload && upload.files && upload.files.length) { event.preventDefault(); uploadFirst(form, upload); return; }
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
    if (window.fetch && window.FormData) {   // the script can upload: its field instead of the plain form
      Array.prototype.forEach.call(document.querySelectorAll("[data-js-only]"), function (e) { e.hidden = false; });
      Array.prototype.forEach.call(document.querySelectorAll("[data-no-js]"), function (e) { e.hidden = true; });
    }
  });
})();
