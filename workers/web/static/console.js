/* Signal console: small enhancements over server-rendered pages; every page also works without this file.
   - [data-refresh="<url>"][data-refresh-s="<seconds>"]: the element's content is fetched again every few seconds
   - [data-copy="<element id>"]: a button that copies that element's text
   - [data-show-when="<field name>"][data-show-value="<values>"]: a field shown when another field has one of these
     (space-separated) values
   - [data-required-when="<field name>"][data-required-value="<value>"]: a field's "(required)" mark, which says
     "(required with <value>)" while another field has any other value
   - form[data-busy="<label>"]: its button says what is happening and cannot be pressed twice
   - form[data-autosubmit]: its selects submit the form when changed
   - button[data-pause="<element id>"]: pauses and resumes that element's refresh (shown only with this file) */
(function () {
  "use strict";

  function signInAgain() {
    window.location.assign("/signin?next=" + encodeURIComponent(window.location.pathname).replace(/%2F/g, "/"));
  }

  function autoRefresh(el) {
    var url = el.getAttribute("data-refresh");
    var seconds = Math.max(1, Number(el.getAttribute("data-refresh-s")) || 5);
    var busy = false;
    window.setInterval(function () {
      if (busy || document.hidden || el.hasAttribute("data-paused")) {
        return;
      }
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "X-Console-Fragment": "1" } })
        .then(function (response) {
          if (response.status === 401) {
            signInAgain();
            return null;
          }
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          if (html !== null) {
            el.innerHTML = html;
            el.removeAttribute("data-stale");
          }
        })
        .catch(function () {
          el.setAttribute("data-stale", "true");
        })
        .then(function () {
          busy = false;
        });
    }, seconds * 1000);
  }

  function copyText(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) {
      return;
    }
    var text = target.textContent.trim();
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    function done() {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 2000);
    }
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents(target);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try {
        document.execCommand("copy");
        done();
      } catch (e) {
        button.textContent = "Select and copy";
      }
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  function showWhen(row) {
    var form = row.closest("form");
    var control = form && form.elements.namedItem(row.getAttribute("data-show-when"));
    var input = row.querySelector("input, select");
    if (!control || !input) {
      return;
    }
    function update() {
      var wanted = row.getAttribute("data-show-value").split(" ").indexOf(control.value) >= 0;
      row.hidden = !(wanted || row.classList.contains("invalid"));  // what is hidden is not sent (forms.py)
    }
    control.addEventListener("change", update);
    update();
  }

  function requiredWhen(mark) {
    var form = mark.closest("form");
    var control = form && form.elements.namedItem(mark.getAttribute("data-required-when"));
    var input = mark.closest(".field") && mark.closest(".field").querySelector("input, select");
    if (!control) {
      return;
    }
    function update() {
      var value = mark.getAttribute("data-required-value");
      var required = control.value === value;
      mark.textContent = required ? "(required)" : "(required with " + value + ")";
      mark.className = required ? "req" : "muted";
      if (input) {
        input.setAttribute("aria-required", required ? "true" : "false");
      }
    }
    control.addEventListener("change", update);
    update();
  }

  function busyForm(form) {
    form.addEventListener("submit", function (event) {
      var button = form.querySelector("button[type=submit]");
      if (form.getAttribute("aria-busy") === "true") {
        event.preventDefault();
        return;
      }
      form.setAttribute("aria-busy", "true");
      if (button) {
        button.textContent = form.getAttribute("data-busy");
        button.disabled = true;
      }
    });
  }

  function pauseButton(button) {
    var target = document.getElementById(button.getAttribute("data-pause"));
    if (!target) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var paused = !target.hasAttribute("data-paused");
      if (paused) {
        target.setAttribute("data-paused", "true");
      } else {
        target.removeAttribute("data-paused");
      }
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      button.textContent = paused ? "Resume" : "Pause";
    });
  }

  // The example key of the install and settings forms: asked again of the server (which owns the rules) as the
  // prefix, partition fields, date layout or variant change.
  function keyPreview(box) {
    var form = box.closest("form");
    var code = box.querySelector("#key-preview");
    var problem = box.querySelector("#key-preview-error");
    var names = ["config.prefix", "config.partition_fields", "config.date_layout", "variant"];
    var timer = null;
    function value(name) {
      var input = form.elements.namedItem(name);
      return input && input.value !== undefined ? input.value : "";
    }
    function update() {
      var params = new URLSearchParams({
        prefix: value("config.prefix"),
        partition_fields: value("config.partition_fields"),
        date_layout: value("config.date_layout"),
        variant: box.dataset.variant || value("variant") || "default"
      });
      fetch(box.dataset.keyPreview + "?" + params.toString(), { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) {
            signInAgain();
            return null;
          }
          return response.ok ? response.json() : null;
        })
        .then(function (answer) {
          if (!answer) {
            return;
          }
          code.textContent = answer.key || "";
          code.hidden = !answer.key;
          problem.textContent = answer.error || "";
          problem.hidden = !answer.error;
        })
        .catch(function () {});
    }
    names.forEach(function (name) {
      var input = form.elements.namedItem(name);
      if (input && input.addEventListener) {
        input.addEventListener("input", function () {
          window.clearTimeout(timer);
          timer = window.setTimeout(update, 250);
        });
        input.addEventListener("change", update);
      }
    });
  }

  function autoSubmit(form) {
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () {
        form.requestSubmit();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(autoRefresh);
    document.querySelectorAll("[data-show-when]").forEach(showWhen);
    document.querySelectorAll("[data-required-when]").forEach(requiredWhen);
    document.querySelectorAll("form[data-busy]").forEach(busyForm);
    document.querySelectorAll("form[data-autosubmit]").forEach(autoSubmit);
    document.querySelectorAll("button[data-pause]").forEach(pauseButton);
    document.querySelectorAll("[data-key-preview]").forEach(keyPreview);
    document.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-copy]");
      if (button) {
        copyText(button);
      }
    });
    var summary = document.getElementById("error-summary");
    if (summary) {
      summary.focus();
    }
  });
})();
