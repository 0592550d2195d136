/* Puhui 浦汇 — taking and uploading photos, for any page (the volunteer page /report, the
 * responders' page /field). Plain JavaScript, no dependency (common.js is not needed).
 *
 *   const photos = PuhuiPhotos.attach(inputElement, onUploaded, options);
 *
 * `inputElement` is an <input type="file" accept="image/*" capture="environment">: the phone
 * opens its camera. Every file chosen is shown at once as a preview (from the phone's own copy),
 * uploaded to POST /api/photos (multipart, field "file") with the bearer token, and on 201
 * `onUploaded({photo_id, url, thumbnail_url, width, height}, file)` is called; the preview then
 * shows the server's thumbnail (the photo as stored: upright, without its metadata).
 *
 * options (all optional):
 *   token()        the bearer token (default: localStorage/sessionStorage[input.dataset.tokenKey
 *                  or "puhui.report.token"])
 *   lang()         "zh" (default) or "en"
 *   preview        the element the previews go in (default: a <ul> inserted after the input)
 *   max            most photos (default 4)
 *   onRemoved(entry), onError(error, file), onChange(entries)
 *
 * The handle returned: entries() (each {key, file, state: uploading|uploaded|waiting|failed,
 * photo?, error?}), photoIds(), waitingFiles(), settled() (a promise: no upload in flight),
 * clear(). A photo that could not be uploaded for want of a connection stays "waiting" with its
 * file: the page decides (the volunteer page keeps it in IndexedDB with the report, see keep()).
 *
 * Also: PuhuiPhotos.upload(blob, {token}), PuhuiPhotos.image(url, {token, alt}) (an <img> that
 * loads a photo with the token: the API wants the header, an <img src> cannot send it), and
 * keep(blob) / take(key) / forget(key) / forgetAll() (blobs kept in IndexedDB across reloads).
 */
"use strict";

(() => {
  const TEXT = {
    zh: {
      uploading: "上传中…",
      uploaded: "已上传",
      waiting: "网络不通：照片已保存在手机上，随报告一起发送",
      failed: "照片未被接受：",
      remove: "移除照片",
      too_many: (n) => `最多 ${n} 张照片`,
      photo: "照片",
    },
    en: {
      uploading: "Uploading…",
      uploaded: "Uploaded",
      waiting: "No connection: the photo is kept on the phone and goes with the report",
      failed: "Photo not accepted: ",
      remove: "Remove photo",
      too_many: (n) => `At most ${n} photos`,
      photo: "Photo",
    },
  };

  class PhotoError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || (status ? `HTTP ${status}` : "network error"));
      this.status = status;
      this.code = err.code || null;
    }
    /** No connection, or the server cannot take it now: worth trying again later. */
    get transient() {
      return !this.status || this.status >= 500 || this.status === 401 || this.status === 429;
    }
  }

  function defaultToken(input) {
    const key = (input && input.dataset && input.dataset.tokenKey) || "puhui.report.token";
    return () => localStorage.getItem(key) || sessionStorage.getItem(key);
  }

  /** POST a blob to /api/photos; resolves to the API's answer, rejects with a PhotoError. */
  async function upload(blob, { token } = {}) {
    const form = new FormData();
    const name = blob.name || "photo.jpg";
    form.append("file", blob, name);
    const headers = { Accept: "application/json" };
    const t = token ? token() : defaultToken(null)();
    if (t) headers.Authorization = `Bearer ${t}`;
    let res;
    try {
      res = await fetch("/api/photos", { method: "POST", headers, body: form, cache: "no-store" });
    } catch (_) {
      throw new PhotoError(0, null);
    }
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) throw new PhotoError(res.status, data);
    return data;
  }

  /** An <img> showing a photo the API serves (fetched with the token, shown from a blob URL). */
  function image(url, { token, alt = "", className = "photo-thumb" } = {}) {
    const img = document.createElement("img");
    img.alt = alt;
    img.className = className;
    img.decoding = "async";
    const headers = {};
    const t = token ? token() : defaultToken(null)();
    if (t) headers.Authorization = `Bearer ${t}`;
    fetch(url, { headers, cache: "no-store" })
      .then((res) => (res.ok ? res.blob() : Promise.reject(new Error(`HTTP ${res.status}`))))
      .then((blob) => {
        const objectUrl = URL.createObjectURL(blob);
        img.addEventListener("load", () => URL.revokeObjectURL(objectUrl), { once: true });
        img.src = objectUrl;
        img.dataset.loaded = "true";
      })
      .catch(() => { img.dataset.loaded = "false"; img.classList.add("photo-missing"); });
    return img;
  }

  // ---------------------------------------------------------------- IndexedDB keeping --------

  const DB_NAME = "puhui-photos";
  const STORE = "blobs";

  function db() {
    return new Promise((resolve, reject) => {
      if (!("indexedDB" in window)) { reject(new Error("no IndexedDB")); return; }
      const open = indexedDB.open(DB_NAME, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(STORE);
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }

  async function tx(mode, work) {
    const base = await db();
    return new Promise((resolve, reject) => {
      const t = base.transaction(STORE, mode);
      const result = work(t.objectStore(STORE));
      t.oncomplete = () => { base.close(); resolve(result && "result" in result ? result.result : undefined); };
      t.onerror = () => { base.close(); reject(t.error); };
      t.onabort = () => { base.close(); reject(t.error); };
    });
  }

  function newKey() {
    const b = crypto.getRandomValues(new Uint8Array(12));
    return "photo-" + [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  }

  /** Keep a blob on the phone (survives a reload); resolves to its key. */
  async function keep(blob) {
    const key = newKey();
    // Stored as {blob, name, type}: some browsers lose a File's name in IndexedDB.
    await tx("readwrite", (s) => s.put({ blob, name: blob.name || "photo.jpg", type: blob.type }, key));
    return key;
  }

  /** The kept blob (a File again), or null. */
  async function take(key) {
    const v = await tx("readonly", (s) => s.get(key));
    if (!v) return null;
    try { return new File([v.blob], v.name, { type: v.type }); } catch (_) { return v.blob; }
  }

  const forget = (key) => tx("readwrite", (s) => s.delete(key));
  const forgetAll = () => tx("readwrite", (s) => s.clear());

  // ---------------------------------------------------------------- the input ----------------

  function attach(input, onUploaded, options = {}) {
    const token = options.token || defaultToken(input);
    const lang = options.lang || (() => (document.documentElement.lang === "en" ? "en" : "zh"));
    const t = (key) => TEXT[lang()][key];
    const max = options.max || 4;
    let list = options.preview;
    if (!list) {
      list = document.createElement("ul");
      list.className = "photo-previews";
      input.insertAdjacentElement("afterend", list);
    }
    list.setAttribute("aria-live", "polite");
    let entries = [];
    const inflight = new Set();
    let seq = 0;

    const changed = () => { render(); if (options.onChange) options.onChange(entries.slice()); };

    function render() {
      list.replaceChildren(...entries.map((e) => {
        const li = document.createElement("li");
        li.className = `photo-preview photo-${e.state}`;
        li.dataset.state = e.state;
        if (e.photo) li.dataset.photoId = e.photo.photo_id;
        li.append(e.img);
        const status = document.createElement("span");
        status.className = "photo-state";
        status.textContent = e.state === "failed" ? t("failed") + (e.error || "") : t(e.state);
        li.append(status);
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "quiet photo-remove";
        remove.textContent = "✕";
        remove.setAttribute("aria-label", t("remove"));
        remove.addEventListener("click", () => {
          entries = entries.filter((x) => x !== e);
          if (e.localUrl) URL.revokeObjectURL(e.localUrl);
          if (options.onRemoved) options.onRemoved(e);
          changed();
        });
        li.append(remove);
        return li;
      }));
    }

    function localPreview(file) {
      const img = document.createElement("img");
      img.className = "photo-thumb";
      img.alt = t("photo");
      const url = URL.createObjectURL(file);
      img.src = url;
      return { img, url };
    }

    async function send(entry) {
      entry.state = "uploading";
      changed();
      const job = (async () => {
        try {
          const photo = await upload(entry.file, { token });
          entry.photo = photo;
          entry.state = "uploaded";
          // The stored photo's thumbnail: what the operators will see (upright, no metadata).
          const served = image(photo.thumbnail_url, { token, alt: t("photo") });
          served.dataset.photoId = photo.photo_id;
          entry.img = served;
          if (entry.localUrl) { URL.revokeObjectURL(entry.localUrl); entry.localUrl = null; }
          if (onUploaded) onUploaded(photo, entry.file);
        } catch (err) {
          entry.state = err.transient ? "waiting" : "failed";
          entry.error = err.message;
          if (options.onError) options.onError(err, entry.file);
        }
        changed();
      })();
      inflight.add(job);
      try { await job; } finally { inflight.delete(job); }
    }

    input.addEventListener("change", () => {
      const files = [...(input.files || [])];
      input.value = ""; // the same photo may be chosen again after removing it
      for (const file of files) {
        if (entries.length >= max) {
          if (options.onError) options.onError(new Error(t("too_many")(max)), file);
          break;
        }
        const { img, url } = localPreview(file);
        const entry = { key: `p${++seq}`, file, state: "uploading", img, localUrl: url };
        entries.push(entry);
        send(entry);
      }
      changed();
    });

    return {
      entries: () => entries.slice(),
      photoIds: () => entries.filter((e) => e.state === "uploaded").map((e) => e.photo.photo_id),
      waitingFiles: () => entries.filter((e) => e.state === "waiting" || e.state === "uploading").map((e) => e.file),
      settled: async () => { while (inflight.size) await Promise.allSettled([...inflight]); },
      retry: () => Promise.all(entries.filter((e) => e.state === "waiting").map(send)),
      clear: () => {
        for (const e of entries) if (e.localUrl) URL.revokeObjectURL(e.localUrl);
        entries = [];
        changed();
      },
      render,
    };
  }

  window.PuhuiPhotos = { attach, upload, image, keep, take, forget, forgetAll, PhotoError };
})();
