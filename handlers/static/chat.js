// The web chat: posts each action as JSON to /chat/api/event and shows the replies.
// Reply text is HTML whose parameters the server has already escaped.
(function () {
  "use strict";
  var log = document.getElementById("log");
  var form = document.getElementById("composer");
  var input = document.getElementById("input");
  var busy = false;

  function bubble(cls, html) {
    var div = document.createElement("div");
    div.className = "msg " + cls;
    div.innerHTML = html;
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function escapeHtml(text) {
    var span = document.createElement("span");
    span.textContent = text;
    return span.innerHTML;
  }

  function disableOldButtons() {
    var old = log.querySelectorAll(".row button");
    for (var i = 0; i < old.length; i++) { old[i].disabled = true; }
  }

  function setHint(hint) {
    var types = { phone: "tel", code: "text", name: "text" };
    input.type = types[hint] || "text";
    input.placeholder = log.dataset["placeholder" + (hint ? hint.charAt(0).toUpperCase() + hint.slice(1) : "Text")]
      || log.dataset.placeholderText;
  }

  function showReply(reply) {
    var div = bubble("bot", reply.text.replace(/\n/g, "<br>"));
    var rows = reply.buttons.slice();
    if (reply.request_location && navigator.geolocation) {
      rows.unshift([{ label: reply.request_location, location: true }]);
    }
    if (rows.length) {
      var box = document.createElement("div");
      box.className = "buttons";
      rows.forEach(function (row) {
        var line = document.createElement("div");
        line.className = "row";
        row.forEach(function (spec) {
          var button = document.createElement("button");
          button.type = "button";
          button.textContent = spec.label;
          button.addEventListener("click", function () {
            if (spec.location) { shareLocation(spec.label); }
            else { send({ kind: "button", payload: spec.payload }, spec.label); }
          });
          line.appendChild(button);
        });
        box.appendChild(line);
      });
      div.appendChild(box);
    }
    setHint(reply.input_hint || (reply.request_contact ? "phone" : ""));
  }

  function shareLocation(label) {
    navigator.geolocation.getCurrentPosition(function (pos) {
      send({ kind: "location", latitude: pos.coords.latitude, longitude: pos.coords.longitude }, label);
    }, function () { bubble("error", escapeHtml(log.dataset.error)); });
  }

  // Actions are sent one at a time, in order: what the citizen does while a request is on its way waits in
  // the queue instead of being lost.
  var queue = [];

  function send(event, echo) {
    if (echo) { disableOldButtons(); bubble("me", escapeHtml(echo)); }
    queue.push(event);
    if (!busy) { pump(); }
  }

  function pump() {
    var event = queue.shift();
    if (!event) { busy = false; document.getElementById("send").disabled = false; return; }
    busy = true;
    document.getElementById("send").disabled = true;
    fetch("/chat/api/event", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(event)
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    }).then(function (data) {
      document.documentElement.lang = data.locale;
      data.replies.forEach(showReply);
    }).catch(function () {
      bubble("error", escapeHtml(log.dataset.error));
    }).then(function () { pump(); input.focus(); });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    if (text.charAt(0) === "/") {
      var parts = text.slice(1).split(/\s+/);
      send({ kind: "command", command: parts[0].toLowerCase(), args: parts.slice(1).join(" ") }, text);
    } else {
      send({ kind: "text", text: text }, text);
    }
  });

  function poll() {
    if (busy) { return; }
    fetch("/chat/api/poll", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { replies: [] }; })
      .then(function (data) { data.replies.forEach(showReply); })
      .catch(function () {});
  }

  var desk = log.dataset.desk;
  var language = document.documentElement.lang;
  send(desk ? { kind: "command", command: "start", args: desk, language: language }
            : { kind: "command", command: "resume", language: language });
  setInterval(poll, 15000);
})();
