// clubstack drop: optional end-to-end encryption. The browser encrypts with AES-GCM (WebCrypto);
// the key travels only in the link's #fragment, which browsers never send to the server.
// Without JavaScript the page still works, for plain-text messages.
(function () {
  "use strict";
  var PREFIX = "clubstack-e2e:v1:";

  function b64encode(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function b64decode(text) {
    text = text.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) text += "=";
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  async function encrypt(plain) {
    var key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt"]);
    var iv = crypto.getRandomValues(new Uint8Array(12));
    var data = new TextEncoder().encode(plain);
    var sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: iv }, key, data));
    var blob = new Uint8Array(iv.length + sealed.length);
    blob.set(iv);
    blob.set(sealed, iv.length);
    var raw = new Uint8Array(await crypto.subtle.exportKey("raw", key));
    return { body: PREFIX + b64encode(blob), key: b64encode(raw) };
  }

  async function decrypt(body, keyText) {
    var blob = b64decode(body.slice(PREFIX.length));
    var key = await crypto.subtle.importKey("raw", b64decode(keyText), "AES-GCM", false, ["decrypt"]);
    var plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: blob.slice(0, 12) }, key, blob.slice(12));
    return new TextDecoder().decode(plain);
  }

  var haveCrypto = !!(window.crypto && window.crypto.subtle);

  // The form: encrypt, post JSON, show the link with the key in its fragment.
  var form = document.getElementById("drop-form");
  if (form && haveCrypto) {
    document.getElementById("e2e").hidden = false;
    form.addEventListener("submit", async function (event) {
      if (!form.elements.encrypt.checked) return; // plain text: the ordinary form post
      event.preventDefault();
      var problem = document.getElementById("drop-error");
      problem.hidden = true;
      if (!form.elements.message.value.trim()) {
        // the server cannot see inside a sealed message, so refuse an empty one here
        problem.textContent = "Write a message: it is empty or only spaces.";
        problem.hidden = false;
        form.elements.message.focus();
        return;
      }
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        var sealed = await encrypt(form.elements.message.value);
        var response = await fetch(form.action, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept": "application/json" },
          body: JSON.stringify({
            message: sealed.body,
            expires_in: parseInt(form.elements.expires_in.value, 10),
            burn_after_reading: form.elements.burn_after_reading.checked
          })
        });
        var data = await response.json();
        if (response.status !== 201) throw new Error(data.message || "The message was not accepted.");
        var link = document.getElementById("result-link");
        link.href = data.url + "#" + sealed.key;
        link.textContent = data.url + "#" + sealed.key;
        document.getElementById("result-token").textContent = data.delete_token;
        form.elements.message.value = "";
        var result = document.getElementById("result");
        result.hidden = false;
        result.focus();
      } catch (error) {
        problem.textContent = error.message;
        problem.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }

  // The message page: decrypt in place with the key from the fragment.
  var holder = document.getElementById("message-text");
  if (holder && holder.textContent.indexOf(PREFIX) === 0) {
    var note = document.getElementById("e2e-note");
    var keyText = window.location.hash.slice(1);
    if (!haveCrypto) {
      note.textContent = "This message is encrypted, and this browser cannot decrypt it here.";
    } else if (!keyText) {
      note.textContent = "This message is encrypted, and the link has no key (the part after #).";
    } else {
      decrypt(holder.textContent.trim(), keyText).then(function (plain) {
        holder.textContent = plain;
        holder.setAttribute("data-decrypted", "true");
        note.textContent = "Decrypted in your browser; the server only ever held ciphertext.";
      }, function () {
        note.textContent = "Could not decrypt: the key in the link is wrong or the message is damaged.";
      });
    }
  }
})();
