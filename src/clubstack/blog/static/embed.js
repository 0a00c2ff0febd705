/* clubstack comments: enhances <div id="clubstack-comments" data-api="..." data-path="...">
   on a static post page. Without JavaScript the page links to the plain HTML comments page.
   Author names and links are set with textContent/attributes; comment HTML comes from the
   server already sanitised (nh3). Edit tokens stay in this browser's localStorage. */
(function () {
  "use strict";
  var box = document.getElementById("clubstack-comments");
  if (!box || !window.fetch) { return; }
  var api = box.getAttribute("data-api").replace(/\/$/, "");
  var path = box.getAttribute("data-path");
  var tokens = {};
  try { tokens = JSON.parse(localStorage.getItem("clubstack-comment-tokens") || "{}"); } catch (e) { tokens = {}; }
  var formToken = "";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) { node.textContent = text; }
    return node;
  }

  var MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December"];

  /* Dates as the blog writes them ("5 December 2026"), whatever the browser's locale. */
  function blogDate(iso) {
    var d = new Date(iso);
    return d.getDate() + " " + MONTHS[d.getMonth()] + " " + d.getFullYear();
  }

  function saveTokens() {
    try { localStorage.setItem("clubstack-comment-tokens", JSON.stringify(tokens)); } catch (e) { /* private mode */ }
  }

  function request(method, url, body, token) {
    var headers = { "Accept": "application/json" };
    if (body) { headers["Content-Type"] = "application/json"; }
    if (token) { headers["X-Edit-Token"] = token; }
    return fetch(url, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined })
      .then(function (r) {
        if (r.status === 204) { return {}; }
        return r.json().then(function (data) {
          if (!r.ok) {
            var msg = data.message || "Something went wrong.";
            if (data.fields) { msg += " " + Object.keys(data.fields).map(function (f) { return f + " " + data.fields[f]; }).join("; "); }
            throw new Error(msg);
          }
          return data;
        });
      });
  }

  function renderComment(c, byId) {
    var li = el("li", { "class": "comment", id: "comment-" + c.id });
    var head = el("p", { "class": "meta" });
    var name = c.website ? el("a", { href: c.website, rel: "nofollow ugc noopener" }, c.author) : el("strong", {}, c.author);
    head.appendChild(name);
    head.appendChild(document.createTextNode(" · "));
    head.appendChild(el("time", { datetime: c.created }, blogDate(c.created)));
    li.appendChild(head);
    var body = el("div", { "class": "comment-body" });
    body.innerHTML = c.html; /* sanitised by the server */
    li.appendChild(body);
    var actions = el("p", { "class": "comment-actions" });
    var reply = el("button", { type: "button" }, "Reply");
    reply.addEventListener("click", function () { li.appendChild(makeForm(c.id)); reply.disabled = true; });
    actions.appendChild(reply);
    if (tokens[c.id] && new Date(c.editable_until) > new Date()) {
      var edit = el("button", { type: "button" }, "Edit");
      edit.addEventListener("click", function () {
        var text = window.prompt("Edit your comment", tokens[c.id].body || "");
        if (text === null) { return; }
        request("PATCH", api + "/api/comments/" + c.id, { body: text }, tokens[c.id].token)
          .then(function () { tokens[c.id].body = text; saveTokens(); load(); })
          .catch(function (e) { window.alert(e.message); });
      });
      var del = el("button", { type: "button" }, "Delete");
      del.addEventListener("click", function () {
        if (!window.confirm("Delete your comment?")) { return; }
        request("DELETE", api + "/api/comments/" + c.id, null, tokens[c.id].token)
          .then(load).catch(function (e) { window.alert(e.message); });
      });
      actions.appendChild(edit);
      actions.appendChild(del);
    }
    li.appendChild(actions);
    var kids = byId[c.id] || [];
    if (kids.length) {
      var ol = el("ol", { "class": "replies" });
      kids.forEach(function (k) { ol.appendChild(renderComment(k, byId)); });
      li.appendChild(ol);
    }
    return li;
  }

  function field(form, label, name, type, required) {
    var p = el("p");
    var id = "cc-" + name + "-" + Math.random().toString(36).slice(2);
    p.appendChild(el("label", { "for": id }, label));
    p.appendChild(el("br"));
    var input = type === "textarea" ? el("textarea", { id: id, name: name, rows: "6" }) : el("input", { id: id, name: name, type: type });
    if (required) { input.required = true; }
    p.appendChild(input);
    form.appendChild(p);
  }

  function makeForm(parent) {
    var form = el("form", { "class": "comment-form" });
    field(form, "Name", "author", "text", true);
    field(form, "E-mail (optional, never shown)", "email", "email", false);
    field(form, "Website (optional)", "website", "url", false);
    field(form, "Comment (Markdown)", "body", "textarea", true);
    var trap = el("p", { hidden: "hidden" });
    trap.appendChild(el("input", { name: "homepage", tabindex: "-1", autocomplete: "off" }));
    form.appendChild(trap);
    var notify = el("label");
    var box2 = el("input", { type: "checkbox", name: "notify" });
    notify.appendChild(box2);
    notify.appendChild(document.createTextNode(" E-mail me replies"));
    form.appendChild(notify);
    var status = el("p", { role: "status" });
    form.appendChild(el("p")).appendChild(el("button", { type: "submit" }, "Post comment"));
    form.appendChild(status);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var data = { path: path, form_token: formToken, parent: parent || null, notify: box2.checked };
      ["author", "email", "website", "body", "homepage"].forEach(function (n) { data[n] = form.elements[n].value; });
      request("POST", api + "/api/comments", data).then(function (res) {
        if (res.form_token) { formToken = res.form_token; } /* the one just sent is spent */
        tokens[res.comment.id] = { token: res.edit_token, body: data.body };
        saveTokens();
        status.textContent = res.comment.status === "approved" ? "Published." : "Thanks, your comment awaits moderation.";
        form.reset();
        load();
      }).catch(function (e) { status.textContent = e.message; });
    });
    return form;
  }

  function load() {
    request("GET", api + "/api/comments?path=" + encodeURIComponent(path)).then(function (data) {
      formToken = data.form_token;
      box.textContent = "";
      var byId = {}, roots = [], known = {};
      data.comments.forEach(function (c) { known[c.id] = true; });
      data.comments.forEach(function (c) {
        if (c.parent && known[c.parent]) { (byId[c.parent] = byId[c.parent] || []).push(c); } else { roots.push(c); }
      });
      var ol = el("ol", { "class": "comments" });
      roots.forEach(function (c) { ol.appendChild(renderComment(c, byId)); });
      box.appendChild(el("p", {}, data.comments.length + (data.comments.length === 1 ? " comment" : " comments")));
      box.appendChild(ol);
      box.appendChild(makeForm(null));
    }).catch(function (e) { box.textContent = "Comments could not be loaded: " + e.message; });
  }

  load();
}());
