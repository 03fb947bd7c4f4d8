// tracemill review UI: keyboard navigation, feedback writes and their checks through POST /api/feedback.
// No inline script anywhere (the page's Content-Security-Policy forbids it); everything starts here.
// Content from traces only ever reaches the page through textContent or form values, never as HTML.
(function () {
  "use strict";

  var AUTHOR_KEY = "tracemill.author";

  // Signed in, the server sets the author from the session (no author is sent); a server without tokens
  // takes the name typed in the header.
  function author() {
    var input = document.getElementById("author");
    if (!input) return undefined;
    return input.value.trim() || "reviewer";
  }

  function setupAuthor() {
    var input = document.getElementById("author");
    if (!input) return;
    try {
      var saved = window.localStorage.getItem(AUTHOR_KEY);
      if (saved) input.value = saved;
    } catch (e) { /* storage may be off: the default name is used */ }
    input.addEventListener("change", function () {
      try { window.localStorage.setItem(AUTHOR_KEY, input.value.trim()); } catch (e) { /* ignore */ }
    });
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  // -- writes ---------------------------------------------------------------------------------------

  function group(element) {
    return element.closest(".fb-group") || element.parentElement;
  }

  function showError(where, message) {
    var box = where.querySelector(":scope > .form-error") || where.querySelector(".form-error");
    var saved = where.querySelector(".saved");
    if (saved) saved.hidden = true;
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  function showSaved(where, message) {
    var box = where.querySelector(":scope > .form-error") || where.querySelector(".form-error");
    if (box) { box.hidden = true; box.textContent = ""; }
    var saved = where.querySelector(".saved");
    if (saved) { saved.textContent = message; saved.hidden = false; }
  }

  // Same-origin JSON: the browser adds the Origin header and the SameSite cookie; scripts never see the token.
  function send(items, query) {
    return fetch("/api/feedback" + (query || ""), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(items)
    }).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!response.ok) {
          var message = body && body.error ? body.error : "the server answered " + response.status;
          throw new Error(message);
        }
        return body;
      });
    });
  }

  function page() {
    return document.getElementById("page");
  }

  function openNext() {
    var p = page();
    if (p && p.dataset.nextUrl) window.location.assign(p.dataset.nextUrl);
  }

  function save(where, items, next) {
    var buttons = where.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    where.classList.add("busy");
    return send(items).then(function () {
      showSaved(where, "saved");
      where.dataset.saved = "1";
      if (next) openNext();
      return true;
    }, function (error) {
      showError(where, "Not saved: " + error.message);
      return false;
    }).then(function (ok) {
      where.classList.remove("busy");
      buttons.forEach(function (b) { b.disabled = false; });
      return ok;
    });
  }

  function feedbackItem(button) {
    var p = page();
    var item = {
      trace_id: p.dataset.traceId,
      span_id: button.dataset.spanId || "",
      name: button.dataset.name,
      author: author(),
      kind: button.dataset.kind
    };
    if (button.dataset.label) item.label = button.dataset.label;
    if (button.dataset.value) item.value = JSON.parse(button.dataset.value);
    if (button.dataset.score) item.score = Number(button.dataset.score);
    if (item.kind === "score") {
      var input = button.previousElementSibling && button.previousElementSibling.querySelector("input[name=score]");
      var raw = input ? input.value.trim() : "";
      if (raw === "" || isNaN(Number(raw))) throw new Error("give a score between 0 and 1 first");
      item.score = Number(raw);
    }
    return item;
  }

  function decisiveItem(spanId) {
    return { trace_id: page().dataset.traceId, span_id: spanId, name: "decisive", author: author(), kind: "decisive" };
  }

  // A flag's button may carry a decisive mark too: confirming a predicted decisive step marks it, and
  // rejecting a flag's span can name the step where the problem is instead (both in one write).
  function feedbackItems(button) {
    var items = [feedbackItem(button)];
    if (button.dataset.decisiveSpan) items.push(decisiveItem(button.dataset.decisiveSpan));
    if (button.dataset.decisivePick) {
      var choice = group(button).querySelector("select[name=decisive-span]");
      if (!choice || !choice.value) throw new Error("choose the step where the problem is first");
      items.push(decisiveItem(choice.value));
    }
    return items;
  }

  function onFeedbackClick(event) {
    var button = event.target.closest("button[data-kind]");
    if (!button) return;
    var where = group(button);
    var items;
    try {
      items = feedbackItems(button);
    } catch (error) {
      showError(where, error.message);
      return;
    }
    save(where, items, button.dataset.next === "1");
  }

  // d: the selected span (else the decisive one) is where the run went wrong.
  function markDecisive() {
    var span = currentSpan();
    var where = document.getElementById("decisive-group");
    if (!span || !where) return false;
    save(where, [decisiveItem(span.dataset.spanId)], false).then(function (ok) {
      if (!ok) return;
      document.querySelectorAll("li.span.marked-now").forEach(function (s) { s.classList.remove("marked-now"); });
      span.classList.add("marked-now");
      showSaved(where, "saved: span " + span.dataset.spanId + " is the decisive step");
    });
    return true;
  }

  // -- the correction editor ------------------------------------------------------------------------

  // Tool arguments are checked by the server (POST /api/feedback?check_only=1 stores nothing), with the same
  // jsonschema checks as a save, so what the editor says and what the server accepts can never differ.
  function readCall(row) {
    var name = row.querySelector("select[name=tool]").value;
    var text = row.querySelector("textarea[name=arguments]").value;
    return { id: row.dataset.callId || "", name: name, arguments: text.trim() ? text : "{}" };
  }

  function correctionItem(form, output, calls) {
    return {
      trace_id: page().dataset.traceId,
      span_id: form.dataset.spanId,
      name: "correction",
      author: author(),
      kind: "correction",
      value: { output: output, tool_calls: calls }
    };
  }

  function shortProblem(message) {
    return message.replace(/^item \d+: tool call \d+ \([^)]*\): /, "")
      .replace(/^the arguments do not fit the tool's parameters: /, "");
  }

  function showCheck(out, problem) {
    out.textContent = problem || "arguments match the schema";
    out.classList.toggle("bad", !!problem);
    out.classList.toggle("ok", !problem);
  }

  function checkRow(form, row) {
    var out = row.querySelector(".schema-check");
    var sequence = (row.checkSequence || 0) + 1;
    row.checkSequence = sequence;
    clearTimeout(row.checkTimer);
    row.checkTimer = setTimeout(function () {
      var item = correctionItem(form, null, [readCall(row)]);
      send([item], "?check_only=1").then(function () {
        if (row.checkSequence === sequence) showCheck(out, "");
      }, function (error) {
        if (row.checkSequence === sequence) showCheck(out, shortProblem(error.message));
      });
    }, 150);
  }

  function checkAll(form) {
    form.querySelectorAll(".tool-call").forEach(function (row) { checkRow(form, row); });
  }

  function newCallId(form) {
    var n = form.querySelectorAll(".tool-call").length + 1;
    return "call_review_" + form.dataset.spanId.slice(0, 8) + "_" + n;
  }

  function addCall(form) {
    var template = form.querySelector("template.call-template");
    var row = template.content.firstElementChild.cloneNode(true);
    row.dataset.callId = newCallId(form);
    form.querySelector(".tool-calls").appendChild(row);
    checkRow(form, row);
    row.querySelector("select").focus();
  }

  function submitCorrection(form) {
    var calls = [];
    form.querySelectorAll(".tool-call").forEach(function (row) { calls.push(readCall(row)); });
    var text = form.querySelector("textarea[name=output]").value;
    var p = page();
    var items = [correctionItem(form, text.trim() ? text : null, calls)];
    if (form.dataset.confirmDetector) {
      // Correcting the decision behind a flag says the flag was right.
      items.push({
        trace_id: p.dataset.traceId, span_id: form.dataset.confirmSpan, name: "flag_review", author: author(),
        kind: "label", label: "confirmed", value: { detector: form.dataset.confirmDetector }
      });
    }
    save(form, items, true);
  }

  // A span's content is loaded when it is first opened (the decisive span's comes with the page).
  // The fragment is HTML the server rendered with everything escaped; scripts in it would not run.
  function ensureLoaded(span) {
    var holder = span && span.querySelector(".span-detail[data-load]");
    if (!holder) return Promise.resolve(span);
    if (holder.loading) return holder.loading;
    holder.loading = fetch(holder.dataset.load, { credentials: "same-origin" }).then(function (response) {
      return response.text().then(function (text) {
        if (!response.ok) throw new Error("could not load this span (" + response.status + ")");
        var template = document.createElement("template");
        template.innerHTML = text;
        holder.replaceChildren(template.content);
        holder.removeAttribute("data-load");
        return span;
      });
    }, function () {
      throw new Error("could not load this span: the server did not answer");
    }).catch(function (error) {
      holder.loading = null;
      var note = document.createElement("p");
      note.className = "form-error";
      note.textContent = error.message;
      holder.replaceChildren(note);
      return span;
    });
    return holder.loading;
  }

  function openEditor(span) {
    if (!span) return false;
    var details = span.querySelector("details.span-body");
    if (details) details.open = true;
    ensureLoaded(span).then(showEditor);
    return !!span.querySelector("form.editor, .span-detail[data-load]");
  }

  function showEditor(span) {
    var form = span && span.querySelector("form.editor");
    if (!form) return null;
    form.hidden = false;
    checkAll(form);
    var area = form.querySelector("textarea[name=output]");
    if (area) area.focus();
    return form;
  }

  function setupEditors() {
    document.addEventListener("input", function (event) {
      var row = event.target.closest(".tool-call");
      var form = event.target.closest("form.editor");
      if (row && form) checkRow(form, row);
    });
    document.addEventListener("change", function (event) {
      var row = event.target.closest(".tool-call");
      var form = event.target.closest("form.editor");
      if (row && form) checkRow(form, row);
    });
    document.addEventListener("toggle", function (event) {
      var details = event.target;
      if (details.classList && details.classList.contains("span-body") && details.open) {
        ensureLoaded(details.closest("li.span"));
      }
    }, true);
    document.addEventListener("submit", function (event) {
      var form = event.target.closest("form.editor");
      if (!form) return;
      event.preventDefault();
      submitCorrection(form);
    });
    document.addEventListener("click", function (event) {
      var target = event.target;
      if (target.closest(".add-call")) { addCall(target.closest("form.editor")); return; }
      if (target.closest(".remove-call")) { target.closest(".tool-call").remove(); return; }
      if (target.closest("button.edit")) { openEditor(target.closest("li.span")); return; }
      var row = target.closest("li.span");
      if (row) select(row);
      onFeedbackClick(event);
    });
  }

  // -- selection and keys ---------------------------------------------------------------------------

  var selected = null;

  function select(span) {
    if (selected) selected.classList.remove("selected");
    selected = span;
    if (span) span.classList.add("selected");
  }

  function currentSpan() {
    if (selected) return selected;
    var p = page();
    var id = p && p.dataset.decisive;
    return id ? document.querySelector('li.span[data-span-id="' + CSS.escape(id) + '"]') : null;
  }

  // e: the selected LLM span, else the decision behind the decisive span, else the first LLM span.
  function openEditorForKey() {
    var span = currentSpan();
    if (!span || !span.classList.contains("kind-llm")) {
      var target = page().dataset.editTarget;
      span = target ? document.querySelector('li.span[data-span-id="' + CSS.escape(target) + '"]') : null;
    }
    if (!span) span = document.querySelector("li.span.kind-llm");
    return openEditor(span);
  }

  function visibleEditor() {
    var forms = document.querySelectorAll("form.editor");
    for (var i = 0; i < forms.length; i++) if (!forms[i].hidden) return forms[i];
    return null;
  }

  function traceKeys(event) {
    var p = page();
    if (event.key === "j" && p.dataset.nextUrl) window.location.assign(p.dataset.nextUrl);
    else if (event.key === "k" && p.dataset.prevUrl) window.location.assign(p.dataset.prevUrl);
    else if (event.key === "e") { if (openEditorForKey()) event.preventDefault(); }
    else if (event.key === "s") {
      var form = visibleEditor();
      if (form) { event.preventDefault(); submitCorrection(form); }
    } else if (event.key === "d") {
      if (markDecisive()) event.preventDefault();
    } else if (event.key === "f") {
      var button = document.querySelector('#current-flag button[data-label="false_positive"]');
      if (button) button.click();
    }
  }

  function queueKeys(event) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.queue-row"));
    if (!rows.length) return;
    var index = rows.indexOf(document.querySelector("tr.queue-row.selected"));
    if (event.key === "j" || event.key === "k") {
      index = event.key === "j" ? Math.min(rows.length - 1, index + 1) : Math.max(0, index - 1);
      rows.forEach(function (r) { r.classList.remove("selected"); });
      rows[index].classList.add("selected");
      rows[index].scrollIntoView({ block: "nearest" });
    } else if ((event.key === "Enter" || event.key === "o") && index >= 0) {
      window.location.assign(rows[index].dataset.href);
    }
  }

  function onKey(event) {
    if (event.ctrlKey && event.key === "Enter") {
      var form = event.target.closest && event.target.closest("form.editor");
      if (form) { event.preventDefault(); submitCorrection(form); }
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (page()) traceKeys(event); else queueKeys(event);
  }

  // Sign-in and sign-out are same-origin JSON requests, like every other write of the UI.
  function setupAccount() {
    var login = document.getElementById("login");
    if (login) login.addEventListener("submit", function (event) {
      event.preventDefault();
      var error = login.parentElement.querySelector(".form-error");
      fetch("/ui/login", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: login.elements.token.value, next: login.elements.next.value })
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body && body.error ? body.error : "sign-in failed (" + response.status + ")");
          window.location.assign(body.next);
        });
      }).catch(function (e) {
        error.textContent = e.message;
        error.hidden = false;
      });
    });
    var logout = document.getElementById("logout");
    if (logout) logout.addEventListener("submit", function (event) {
      event.preventDefault();
      fetch("/ui/logout", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: "{}"
      }).then(function (response) { return response.json(); }).then(function (body) {
        window.location.assign(body.next);
      });
    });
  }

  function start() {
    setupAccount();
    setupAuthor();
    setupEditors();
    document.addEventListener("keydown", onKey);
    var span = currentSpan();
    if (span) {
      select(span);
      span.scrollIntoView({ block: "center" });
    }
    var first = document.querySelector("tr.queue-row");
    if (first) first.classList.add("selected");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
