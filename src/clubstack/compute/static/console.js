// The live serial console of a capsul: a small terminal on a <pre>. A CSRF-protected POST
// gets a one-time ticket, a WebSocket carries keystrokes to the guest and its output back.
// Output is shown as text (escape sequences dropped); it is never parsed as HTML.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var opener = document.getElementById("console-open");
  if (!live || !opener || !window.WebSocket) { return; }
  var terminal = document.getElementById("terminal");
  var screen = document.getElementById("screen");
  var state = document.getElementById("console-state");
  var lineForm = document.getElementById("console-line");
  var input = document.getElementById("console-input");
  var closer = document.getElementById("console-close");
  var decoder = new TextDecoder("utf-8");
  var text = "";
  var socket = null;
  var MAX = 100000;
  // CSI sequences (colours, cursor moves, the shell's cursor-position queries) and OSC titles
  var ESCAPES = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>]/g;

  opener.hidden = false;

  function show(chunk) {
    chunk = chunk.replace(ESCAPES, "").replace(/\r\n/g, "\n").replace(/\r/g, "");
    for (var i = 0; i < chunk.length; i++) {
      var c = chunk[i];
      if (c === "\b") { text = text.slice(0, -1); }
      else if (c === "\x07") { continue; }
      else { text += c; }
    }
    if (text.length > MAX) { text = text.slice(text.length - MAX); }
    screen.textContent = text;
    screen.scrollTop = screen.scrollHeight;
  }

  function send(data) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(data); }
  }

  function connect(event) {
    event.preventDefault();
    state.textContent = "Connecting…";
    terminal.hidden = false;
    fetch(opener.action, { method: "POST", body: new FormData(opener), credentials: "same-origin",
                           headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(body.message || "The console could not be opened."); }
          return body;
        });
      })
      .then(function (body) {
        var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
        socket = new WebSocket(scheme + window.location.host + body.url);
        socket.binaryType = "arraybuffer";
        socket.onopen = function () {
          state.textContent = "Connected. Focus the console and type, or send a line below.";
          opener.hidden = true;
          screen.focus();
          send("\r");  // wake the prompt
        };
        socket.onmessage = function (message) {
          show(typeof message.data === "string" ? message.data
               : decoder.decode(new Uint8Array(message.data), { stream: true }));
        };
        socket.onclose = function (close) {
          state.textContent = "Disconnected" + (close.reason ? ": " + close.reason : ".");
          opener.hidden = false;
          socket = null;
        };
      })
      .catch(function (error) { state.textContent = error.message; });
  }

  var KEYS = { Enter: "\r", Backspace: "\x7f", Tab: "\t", Escape: "\x1b", ArrowUp: "\x1b[A",
               ArrowDown: "\x1b[B", ArrowRight: "\x1b[C", ArrowLeft: "\x1b[D", Delete: "\x1b[3~",
               Home: "\x1b[H", End: "\x1b[F" };

  screen.addEventListener("keydown", function (event) {
    var data = null;
    if (event.ctrlKey && !event.altKey && event.key.length === 1) {
      var code = event.key.toUpperCase().charCodeAt(0);
      if (code >= 64 && code <= 95) { data = String.fromCharCode(code - 64); }
    } else if (KEYS[event.key]) {
      data = KEYS[event.key];
    } else if (event.key.length === 1 && !event.metaKey) {
      data = event.key;
    }
    if (data !== null) { event.preventDefault(); send(data); }
  });
  screen.addEventListener("paste", function (event) {
    event.preventDefault();
    send(event.clipboardData.getData("text"));
  });
  lineForm.addEventListener("submit", function (event) {
    event.preventDefault();
    send(input.value + "\r");
    input.value = "";
  });
  closer.addEventListener("click", function () { if (socket) { socket.close(); } });
  opener.addEventListener("submit", connect);
})();
